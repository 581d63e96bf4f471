/**
 * The reconcile queue both agents run their data-plane passes in (after the workqueues of
 * controller-runtime and Antrea, cut to what an agent with one data plane needs):
 *
 * - passes are keyed by kind (`full`, `joins`, ...), listed in priority order; a request for a
 *   kind already pending is folded into it, so a burst of events is one pass;
 * - one pass runs at a time; the next is the highest-priority kind pending, and a kind may
 *   subsume others (a full pass does what a fast one would: both are cleared);
 * - each kind has a debounce before its pass starts (0: at the next turn of the event loop);
 * - a failed pass is retried as `retryKind` after a back-off that doubles up to `maxMs` and is
 *   reset by the next success; the error goes to `onError`, never out of the queue;
 * - a queue made `paused` collects requests until `resume()` (an agent's first pass runs with
 *   `runNow` while events that arrive meanwhile wait for it);
 * - `stop()` ends the queue and waits for the pass in flight.
 *
 * Pure of the kernel: the passes are callbacks. The timers are Node's (unref'd).
 */

export interface PassQueueOptions<K extends string> {
  /** Every kind, highest priority first. */
  readonly kinds: readonly K[];
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

export class PassQueue<K extends string> {
  private readonly pending = new Set<K>();
  private inFlight: Promise<void> | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private stopped = false;
  private paused: boolean;

  constructor(private readonly o: PassQueueOptions<K>) {
    this.backoffMs = (o.backoff ?? DEFAULT_BACKOFF).initialMs;
    this.paused = o.paused ?? false;
  }

  /** Starts the passes requested while paused. */
  resume(): void {
    this.paused = false;
    if (this.pending.size) this.kick();
  }

  /** The back-off the next failure would wait (ms). */
  get nextRetryMs(): number {
    return this.backoffMs;
  }

  /** Kinds waiting, highest priority first. */
  get waiting(): K[] {
    return this.o.kinds.filter((k) => this.pending.has(k));
  }

  /** Whether a pass runs now. */
  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  /** Asks for a pass of `kind`; folded into one already pending. */
  request(kind: K): void {
    if (this.stopped) return;
    this.pending.add(kind);
    if (this.debounce || this.inFlight || this.paused) return;
    this.debounce = setTimeout(
      () => {
        this.debounce = undefined;
        this.kick();
      },
      this.o.delayMs?.(kind) ?? 0,
    );
    this.debounce.unref();
  }

  /**
   * Runs `fn` as a pass of `kind` now, in the queue (after the pass in flight, before any
   * pending one), and hands its error to the caller instead of retrying: a start-up pass whose
   * failure ends the start.
   */
  async runNow(kind: K, fn: () => Promise<void> = () => this.o.run(kind)): Promise<void> {
    while (this.inFlight) await this.inFlight.catch(() => undefined);
    this.clear(kind);
    const p = fn();
    this.inFlight = p.then(
      () => undefined,
      () => undefined,
    );
    try {
      await p;
    } finally {
      this.inFlight = undefined;
      if (this.pending.size && !this.paused) this.kick();
    }
  }

  private clear(kind: K): void {
    this.pending.delete(kind);
    for (const k of this.o.subsumes?.(kind) ?? []) this.pending.delete(k);
  }

  private kick(): void {
    if (this.inFlight || this.stopped || this.paused) return;
    this.inFlight = (async () => {
      while (this.pending.size && !this.stopped) {
        const kind = this.o.kinds.find((k) => this.pending.has(k))!;
        this.clear(kind);
        try {
          await this.o.run(kind);
          this.backoffMs = (this.o.backoff ?? DEFAULT_BACKOFF).initialMs;
          this.o.onSuccess?.(kind);
        } catch (err) {
          const wait = this.backoffMs;
          this.backoffMs = Math.min(wait * 2, (this.o.backoff ?? DEFAULT_BACKOFF).maxMs);
          this.o.onError(kind, err, wait);
          if (this.retry) clearTimeout(this.retry);
          this.retry = setTimeout(() => {
            this.retry = undefined;
            this.request(this.o.retryKind);
          }, wait);
          this.retry.unref();
          // What else is pending waits for the retry too: the kernel just refused a pass.
          return;
        }
      }
    })().finally(() => {
      this.inFlight = undefined;
    });
  }

  /** Ends the queue: nothing new starts; waits for the pass in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.retry) clearTimeout(this.retry);
    this.pending.clear();
    await this.inFlight?.catch(() => undefined);
  }
}
