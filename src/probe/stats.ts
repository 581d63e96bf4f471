/**
 * Per-sender receive statistics (pure: the caller passes the arrival time). One StreamStats per
 * sender run (probe session, or iperf2 source address:port).
 *
 * Definitions, so numbers from different runs and tools compare:
 * - received: distinct sequence numbers seen; duplicates: copies of a sequence already seen
 *   (a replication bug shows up here, not as extra "received").
 * - lost: expected - received, where expected is the total the sender announced in each datagram
 *   (or, for senders that do not announce it, highest sequence + 1). Missing tail datagrams are
 *   therefore counted as lost, unlike a max-sequence estimate.
 * - reordered: a datagram whose sequence is below the highest one already seen (RFC 4737's
 *   "reordered" singleton test, counted per datagram).
 * - latency: arrival - send timestamp (one-way; needs synchronised clocks between hosts, exact
 *   between namespaces of one machine). Percentiles by nearest rank.
 * - join latency: first arrival from this sender - the moment our socket joined the group.
 */

/** Sequence numbers beyond this are not tracked (counted as untracked). */
export const MAX_TRACKED_SEQ = 1 << 26;
/**
 * Duplicates are told apart within this many sequence numbers below the highest one seen (a
 * ring bit set of 32 KiB per stream). One forged datagram with a huge sequence costs a stream
 * this much and no more; a datagram older than the window is counted as untracked.
 */
export const SEQ_WINDOW = 1 << 18;
/** Latency samples kept per stream (8 MiB); beyond, a uniform reservoir sample of them. */
export const MAX_LATENCY_SAMPLES = 1 << 20;
/** Sender streams (probe sessions, iperf2 sources) one receiver keeps; more are counted, not stored. */
export const MAX_STREAMS = 512;
const WINDOW_BYTES = SEQ_WINDOW / 8;

export type SenderSource = 'probe' | 'iperf2' | 'missing';

export interface LatencySummary {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface SenderSummary {
  readonly id: string;
  readonly address: string;
  readonly source: SenderSource;
  readonly expected: number;
  readonly received: number;
  readonly lost: number;
  /** lost / expected * 100; 0 when nothing was expected. */
  readonly lossPercent: number;
  readonly duplicates: number;
  readonly reordered: number;
  /** Datagrams with a sequence number too large, or too far behind the highest (SEQ_WINDOW), to track. */
  readonly untracked: number;
  readonly latencyMs: LatencySummary | null;
  readonly joinLatencyMs: number | null;
  /** Epoch ms of the first datagram from this sender (compare across hosts only with synced clocks). */
  readonly firstAt: number | null;
  /** Receive rate between the first and the last datagram, datagrams per second. */
  readonly receivePps: number | null;
}

/** Nearest-rank percentile of an ascending array; p in (0, 100]. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function summarizeLatency(values: ArrayLike<number>): LatencySummary | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] as number };
}

export class StreamStats {
  /** Ring bit set: byte `(seq >>> 3) % seen.length`; grows to WINDOW_BYTES, then wraps. */
  private seen = new Uint8Array(1024);
  private latencies = new Float64Array(1024);
  private latencyCount = 0;
  private latencySeen = 0;
  private highest = -1;
  private announcedTotal = 0;
  private finalTotal = 0;
  private received = 0;
  private duplicates = 0;
  private reordered = 0;
  private untracked = 0;
  private firstAt: number | undefined;
  private firstDataAt: number | undefined;
  private lastAt: number | undefined;

  constructor(
    readonly id: string,
    readonly address: string,
    readonly source: Exclude<SenderSource, 'missing'>,
    /** When our socket joined the group (epoch ms); the base of join latency. */
    readonly joinedAt: number,
  ) {}

  /**
   * Records one datagram. `total` is the sender's announced total (0 = unknown).
   * Returns what it was, for callers that count or stop early.
   */
  record(seq: number, sentAt: number, arrivedAt: number, total = 0): 'new' | 'duplicate' | 'untracked' {
    if (total > this.announcedTotal) this.announcedTotal = total;
    if (this.firstAt === undefined) this.firstAt = arrivedAt;
    if (this.firstDataAt === undefined) this.firstDataAt = arrivedAt;
    this.lastAt = arrivedAt;
    if (!Number.isInteger(seq) || seq < 0 || seq >= MAX_TRACKED_SEQ) {
      this.untracked++;
      return 'untracked';
    }
    const byte = seq >>> 3;
    if (seq > this.highest) this.advance(seq);
    else if (byte <= (this.highest >>> 3) - WINDOW_BYTES) {
      this.untracked++;
      return 'untracked';
    }
    const slot = byte % this.seen.length;
    const bit = 1 << (seq & 7);
    if ((this.seen[slot] as number) & bit) {
      this.duplicates++;
      return 'duplicate';
    }
    this.seen[slot] = (this.seen[slot] as number) | bit;
    this.received++;
    if (seq < this.highest) this.reordered++;
    else this.highest = seq;
    this.sampleLatency(arrivedAt - sentAt);
    return 'new';
  }

  /** Grows the bit set towards the window, and clears the ring slots the new highest reuses. */
  private advance(seq: number): void {
    const from = this.highest < 0 ? 0 : (this.highest >>> 3) + 1;
    const to = seq >>> 3;
    if (to >= this.seen.length && this.seen.length < WINDOW_BYTES) {
      let n = this.seen.length;
      while (n <= to && n < WINDOW_BYTES) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(this.seen);
      this.seen = grown;
    }
    const len = this.seen.length;
    if (to - from + 1 >= len) this.seen.fill(0);
    else if (from <= to) {
      const a = from % len;
      const b = to % len;
      if (a <= b) this.seen.fill(0, a, b + 1);
      else {
        this.seen.fill(0, a);
        this.seen.fill(0, 0, b + 1);
      }
    }
  }

  /** Keeps every latency up to MAX_LATENCY_SAMPLES, then a uniform sample (reservoir). */
  private sampleLatency(ms: number): void {
    this.latencySeen++;
    if (this.latencyCount < MAX_LATENCY_SAMPLES) {
      if (this.latencyCount === this.latencies.length) {
        const grown = new Float64Array(Math.min(MAX_LATENCY_SAMPLES, this.latencies.length * 2));
        grown.set(this.latencies);
        this.latencies = grown;
      }
      this.latencies[this.latencyCount++] = ms;
      return;
    }
    const j = Math.floor(Math.random() * this.latencySeen);
    if (j < MAX_LATENCY_SAMPLES) this.latencies[j] = ms;
  }

  /** Bytes held by this stream's bit set and latency samples. */
  memoryBytes(): number {
    return this.seen.byteLength + this.latencies.byteLength;
  }

  /** Notes a datagram that is not data (a HELLO): it still proves delivery for join latency. */
  hello(arrivedAt: number, total = 0): void {
    if (total > this.announcedTotal) this.announcedTotal = total;
    if (this.firstAt === undefined) this.firstAt = arrivedAt;
  }

  /** iperf2 ends a test with datagrams whose id is minus the last id; that tells the total. */
  finish(total: number): void {
    if (total > this.finalTotal) this.finalTotal = total;
  }

  /** The number of datagrams we should have seen. */
  expected(): number {
    return Math.max(this.announcedTotal, this.finalTotal, this.highest + 1);
  }

  /** True once every announced datagram arrived (lets a run end before --wait runs out). */
  complete(): boolean {
    const total = Math.max(this.announcedTotal, this.finalTotal);
    return total > 0 && this.received >= total;
  }

  summary(): SenderSummary {
    const expected = this.expected();
    const lost = Math.max(0, expected - this.received);
    const span = this.firstDataAt !== undefined && this.lastAt !== undefined ? this.lastAt - this.firstDataAt : 0;
    return {
      id: this.id,
      address: this.address,
      source: this.source,
      expected,
      received: this.received,
      lost,
      lossPercent: expected > 0 ? (lost / expected) * 100 : 0,
      duplicates: this.duplicates,
      reordered: this.reordered,
      untracked: this.untracked,
      latencyMs: summarizeLatency(this.latencies.subarray(0, this.latencyCount)),
      joinLatencyMs: this.firstAt === undefined ? null : this.firstAt - this.joinedAt,
      firstAt: this.firstAt ?? null,
      receivePps: span > 0 && this.received > 1 ? ((this.received - 1) * 1000) / span : null,
    };
  }
}

/** The streams of one receiver, at most MAX_STREAMS: forged sessions cannot grow it without bound. */
export class StreamTable {
  private readonly streams = new Map<string, StreamStats>();
  /** Datagrams of new streams refused because the table was full. */
  refused = 0;

  constructor(private readonly max = MAX_STREAMS) {}

  /** The stream for `key`, made by `make` if new and there is room; undefined when full. */
  get(key: string, make: () => StreamStats): StreamStats | undefined {
    const s = this.streams.get(key);
    if (s) return s;
    if (this.streams.size >= this.max) {
      this.refused++;
      return undefined;
    }
    const made = make();
    this.streams.set(key, made);
    return made;
  }

  get size(): number {
    return this.streams.size;
  }

  values(): IterableIterator<StreamStats> {
    return this.streams.values();
  }
}

/** The row for an expected sender (from --peers or --service) that sent us nothing. */
export function missingSender(address: string, expected: number): SenderSummary {
  return {
    id: '-',
    address,
    source: 'missing',
    expected,
    received: 0,
    lost: expected,
    lossPercent: expected > 0 ? 100 : 0,
    duplicates: 0,
    reordered: 0,
    untracked: 0,
    latencyMs: null,
    joinLatencyMs: null,
    firstAt: null,
    receivePps: null,
  };
}

/** The worst loss among senders; the exit code compares it against --max-loss. */
export function worstLossPercent(senders: readonly SenderSummary[]): number {
  return senders.reduce((worst, s) => Math.max(worst, s.lossPercent), 0);
}
