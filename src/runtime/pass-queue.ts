/**
 * The reconcile queue both agents run their data-plane passes in (after the workqueues of
 * controller-runtime and Antrea, cut to what an agent with one data plane needs):
 *
 * - passes are keyed by kind (`full`, `joins`, ...), listed in priority order; a request for a
 *   kind already pending is folded into it, so a burst of events is one pass;
 * - kinds run in lanes (default: one lane for all): one pass at a time per lane, the next being
 *   the lane's highest-priority kind pending; passes of different lanes may run at once, so a
 *   small event-driven pass need not wait behind a long periodic one (the caller serialises what
 *   two lanes share, e.g. with KeyedLock);
 * - a kind may subsume others (a full pass does what a fast one would: both are cleared);
 * - each kind has a debounce before its pass starts (0: at the next turn of the event loop);
 * - a failed pass, in any lane, is retried as `retryKind` after one shared back-off that doubles
 *   up to `maxMs` and is reset by the next success in the retry kind's lane (a small pass that
 *   succeeds beside a failing full pass says nothing of what failed); the error goes to
 *   `onError`, never out of the queue;
 * - a queue made `paused` collects requests until `resume()` (an agent's first pass runs with
 *   `runNow`, alone, while events that arrive meanwhile wait for it);
 * - `stop()` ends the queue and waits for the passes in flight.
 *
 * Pure of the kernel: the passes are callbacks. The timers are Node's (unref'd).
 */

export interface PassQueueOptions<K extends string> {
  /** Every kind, highest priority first. */
  readonly kinds: readonly K[];
  /** The lane a kind runs in (default: one lane for every kind). */
  readonly lane?: (kind: K) => string;
  /** The pending kinds a pass of `kind` makes unnecessary (besides itself). */
  readonly subsumes?: (kind: K) => readonly K[];
  /** Debounce before a requested pass starts (ms). */
  readonly delayMs?: (kind: K) => number;
  readonly run: (kind: K) => Promise<void>;
  /** A pass failed: `retryInMs` until the `retryKind` pass. */
  readonly onError: (kind: K, err: unknown, retryInMs: number) => void;
  readonly onSuccess?: (kind: K) => void;
  /** The kind a failure is retried as (usually the full pass). */
  readonly retryKind: K;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Requests wait for `resume()`. */
  readonly paused?: boolean;
}

export const DEFAULT_BACKOFF = { initialMs: 200, maxMs: 5_000 } as const;

interface Lane {
  inFlight: Promise<void> | undefined;
  debounce: NodeJS.Timeout | undefined;
}

export class PassQueue<K extends string> {
  private readonly pending = new Set<K>();
  private readonly lanes = new Map<string, Lane>();
  /** A runNow pass: it runs alone, every lane waits for it. */
  private exclusive: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private stopped = false;
  private paused: boolean;

  constructor(private readonly o: PassQueueOptions<K>) {
    this.backoffMs = this.backoff.initialMs;
    this.paused = o.paused ?? false;
  }

  private get backoff(): { readonly initialMs: number; readonly maxMs: number } {
    return this.o.backoff ?? DEFAULT_BACKOFF;
  }

  private laneName(kind: K): string {
    return this.o.lane?.(kind) ?? '';
  }

  private lane(name: string): Lane {
    let l = this.lanes.get(name);
    if (!l) {
      l = { inFlight: undefined, debounce: undefined };
      this.lanes.set(name, l);
    }
    return l;
  }

  /** Starts the passes requested while paused. */
  resume(): void {
    this.paused = false;
    this.kickAll();
  }

  /** The back-off the next failure would wait (ms). */
  get nextRetryMs(): number {
    return this.backoffMs;
  }

  /** Kinds waiting, highest priority first. */
  get waiting(): K[] {
    return this.o.kinds.filter((k) => this.pending.has(k));
  }

  /** Whether a pass runs now (in any lane). */
  get busy(): boolean {
    return this.exclusive !== undefined || [...this.lanes.values()].some((l) => l.inFlight !== undefined);
  }

  /** Whether a pass of `kind`'s lane runs now. */
  busyLane(kind: K): boolean {
    return this.lanes.get(this.laneName(kind))?.inFlight !== undefined;
  }

  /** Asks for a pass of `kind`; folded into one already pending. */
  request(kind: K): void {
    if (this.stopped) return;
    this.pending.add(kind);
    const name = this.laneName(kind);
    const lane = this.lane(name);
    if (lane.debounce || lane.inFlight || this.paused || this.exclusive) return;
    lane.debounce = setTimeout(
      () => {
        lane.debounce = undefined;
        this.kick(name);
      },
      this.o.delayMs?.(kind) ?? 0,
    );
    lane.debounce.unref();
  }

  /**
   * Runs `fn` as a pass of `kind` now, alone (after the passes in flight, before any pending
   * one), and hands its error to the caller instead of retrying: a start-up pass whose failure
   * ends the start.
   */
  async runNow(kind: K, fn: () => Promise<void> = () => this.o.run(kind)): Promise<void> {
    for (;;) {
      const running = [this.exclusive, ...[...this.lanes.values()].map((l) => l.inFlight)].filter((p) => p !== undefined);
      if (!running.length) break;
      await Promise.all(running.map(async (p) => await p.catch(() => undefined)));
    }
    this.clear(kind);
    const p = fn();
    this.exclusive = p.then(
      () => undefined,
      () => undefined,
    );
    try {
      await p;
    } finally {
      this.exclusive = undefined;
      this.kickAll();
    }
  }

  private clear(kind: K): void {
    this.pending.delete(kind);
    for (const k of this.o.subsumes?.(kind) ?? []) this.pending.delete(k);
  }

  private kickAll(): void {
    if (this.paused) return;
    const names = new Set(this.waiting.map((k) => this.laneName(k)));
    for (const name of names) this.kick(name);
  }

  private kick(name: string): void {
    const lane = this.lane(name);
    if (lane.inFlight || this.stopped || this.paused || this.exclusive) return;
    const next = (): K | undefined => this.o.kinds.find((k) => this.pending.has(k) && this.laneName(k) === name);
    lane.inFlight = (async () => {
      for (let kind = next(); kind !== undefined && !this.stopped; kind = next()) {
        this.clear(kind);
        try {
          await this.o.run(kind);
          if (name === this.laneName(this.o.retryKind)) this.backoffMs = this.backoff.initialMs;
          this.o.onSuccess?.(kind);
        } catch (err) {
          const wait = this.backoffMs;
          this.backoffMs = Math.min(wait * 2, this.backoff.maxMs);
          this.o.onError(kind, err, wait);
          if (this.retry) clearTimeout(this.retry);
          this.retry = setTimeout(() => {
            this.retry = undefined;
            this.request(this.o.retryKind);
            this.kickAll(); // and what waited in the failed lane
          }, wait);
          this.retry.unref();
          // What else is pending in this lane waits for the back-off too: the kernel just refused a pass.
          return;
        }
      }
    })().finally(() => {
      lane.inFlight = undefined;
    });
  }

  /** Ends the queue: nothing new starts; waits for the passes in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const l of this.lanes.values()) if (l.debounce) clearTimeout(l.debounce);
    if (this.retry) clearTimeout(this.retry);
    this.pending.clear();
    await Promise.all([this.exclusive, ...[...this.lanes.values()].map((l) => l.inFlight)].map(async (p) => await p?.catch(() => undefined)));
  }
}
