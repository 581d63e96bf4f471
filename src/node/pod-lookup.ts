/**
 * `GET /v1/pods/<ip>` for an IP no domain lists: whether it is a pod on this node (its host veth)
 * takes a route read, a namespace-id read and a bridge scan, several `ip` processes. Any pod may
 * ask, as often as it likes, for any IP: so such IPs are answered from a view that at most one
 * lookup batch per interval refreshes. A request for an IP the view does not have (or has from
 * longer than the interval ago) adds it to the next batch; when that batch starts at once (none
 * ran within the interval) or already carries the IP, the request waits for it, otherwise it gets
 * the view's answer (possibly none: 404, which `kmcast wait` treats as "not known yet").
 *
 * The timing and the bounds are here; the lookup itself is a callback (the agent's resolver).
 */

export interface LookupTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): { unref?(): void };
}

const REAL_TIMERS: LookupTimers = { now: () => Date.now(), setTimeout: (fn, ms) => setTimeout(fn, ms) };

export interface PodLookupOptions {
  /** At most one batch starts per interval (ms). */
  readonly intervalMs: number;
  /** IPs one batch carries; more wait for the next one. */
  readonly maxBatch?: number;
  /** IPs the view keeps (the oldest answers are forgotten first). */
  readonly maxView?: number;
  readonly timers?: LookupTimers;
}

/** What the view knows of an IP: the host veth of a pod on this node, or not a local pod. */
export interface LookupAnswer {
  readonly hostVeth: string | undefined;
  readonly at: number;
}

export class PodLookup {
  private readonly view = new Map<string, LookupAnswer>();
  private readonly wanted = new Set<string>();
  private inFlight: { ips: ReadonlySet<string>; done: Promise<void> } | undefined;
  private lastStart = -Infinity;
  private timer: { unref?(): void } | undefined;
  private readonly timers: LookupTimers;
  private readonly maxBatch: number;
  private readonly maxView: number;
  /** Batches run, and requests answered without one (from the view or with nothing). */
  readonly counters = { batches: 0, fromView: 0 };

  constructor(
    private readonly lookup: (ips: readonly string[]) => Promise<ReadonlyMap<string, string | undefined>>,
    private readonly opts: PodLookupOptions,
  ) {
    this.timers = opts.timers ?? REAL_TIMERS;
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxView = opts.maxView ?? 1024;
  }

  /** The host veth of `ip` if it is a pod on this node, undefined if not (or not known yet). */
  async get(ip: string): Promise<string | undefined> {
    const now = this.timers.now();
    const seen = this.view.get(ip);
    if (seen && now - seen.at < this.opts.intervalMs) {
      this.counters.fromView++;
      return seen.hostVeth;
    }
    if (!this.inFlight?.ips.has(ip) && this.wanted.size < this.maxBatch) this.wanted.add(ip);
    this.schedule();
    const batch = this.inFlight;
    if (batch?.ips.has(ip)) {
      await batch.done;
      return this.view.get(ip)?.hostVeth;
    }
    this.counters.fromView++;
    return seen?.hostVeth;
  }

  /** Starts a batch now when the interval allows, else arms one timer for when it does. */
  private schedule(): void {
    if (this.inFlight || this.timer || this.wanted.size === 0) return;
    const wait = this.lastStart + this.opts.intervalMs - this.timers.now();
    if (wait <= 0) {
      this.start();
      return;
    }
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.schedule();
    }, wait);
    this.timer.unref?.();
  }

  private start(): void {
    const ips = new Set(this.wanted);
    this.wanted.clear();
    this.lastStart = this.timers.now();
    this.counters.batches++;
    const done = this.lookup([...ips]).then(
      (found) => {
        const at = this.timers.now();
        for (const ip of ips) {
          this.view.delete(ip);
          this.view.set(ip, { hostVeth: found.get(ip), at });
        }
        for (const old of this.view.keys()) {
          if (this.view.size <= this.maxView) break;
          this.view.delete(old);
        }
      },
      () => undefined,
    );
    this.inFlight = { ips, done };
    void done.finally(() => {
      this.inFlight = undefined;
      this.schedule();
    });
  }
}
