/**
 * Send pacing (pure: time is passed in). Datagram k is due at start + k/rate; each timer tick
 * sends every datagram that is due. Deriving the schedule from the start time, not from the
 * previous tick, means timer jitter and slow ticks never accumulate into drift: at 10k+ pps with
 * ~1 ms timers a tick simply carries ~10 datagrams, and after a stall the pacer catches up
 * (bounded by maxBatch per tick so one tick cannot monopolise the event loop).
 */

export interface PacerOptions {
  /** Datagrams per second; 0 = as fast as the socket takes them. */
  readonly rate: number;
  /** Datagrams to send in total. */
  readonly count: number;
  /** Start time, ms (any monotonic clock, the same one passed to due()). */
  readonly start: number;
  /** Upper bound of datagrams per tick. */
  readonly maxBatch?: number;
}

export class Pacer {
  readonly rate: number;
  readonly count: number;
  readonly start: number;
  readonly maxBatch: number;
  private sentSoFar = 0;

  constructor(options: PacerOptions) {
    if (!(options.rate >= 0) || !Number.isFinite(options.rate)) throw new RangeError(`pace: rate ${options.rate} (must be >= 0)`);
    if (!Number.isInteger(options.count) || options.count < 0) throw new RangeError(`pace: count ${options.count} (must be an integer >= 0)`);
    this.rate = options.rate;
    this.count = options.count;
    this.start = options.start;
    this.maxBatch = options.maxBatch ?? 256;
  }

  get sent(): number {
    return this.sentSoFar;
  }

  get done(): boolean {
    return this.sentSoFar >= this.count;
  }

  /** How many datagrams to send at time `now` (already capped by maxBatch and count). */
  due(now: number): number {
    const remaining = this.count - this.sentSoFar;
    if (remaining <= 0) return 0;
    if (this.rate === 0) return Math.min(remaining, this.maxBatch);
    if (now < this.start) return 0;
    const target = Math.min(this.count, Math.floor(((now - this.start) * this.rate) / 1000) + 1);
    return Math.max(0, Math.min(target - this.sentSoFar, this.maxBatch));
  }

  /** Tells the pacer `n` datagrams went out. */
  advance(n: number): void {
    this.sentSoFar = Math.min(this.count, this.sentSoFar + n);
  }

  /** When the next datagram is due (ms, same clock as start); Infinity when done. */
  nextAt(): number {
    if (this.done) return Number.POSITIVE_INFINITY;
    if (this.rate === 0) return this.start;
    return this.start + (this.sentSoFar * 1000) / this.rate;
  }

  /** Planned duration of the whole run, ms (0 for unlimited rate). */
  plannedDurationMs(): number {
    return this.rate === 0 || this.count === 0 ? 0 : ((this.count - 1) * 1000) / this.rate;
  }
}
