/**
 * Per-sender replay guard on (incarnation, sequence number, timestamp), pure: time is passed in.
 *
 * - Timestamp window: a datagram whose timestamp is more than `windowMs` away from the receiver's
 *   clock is refused, so a captured datagram is useless once the window has passed, even after
 *   the guard has forgotten its sender.
 * - Within an incarnation: a sliding window of the last `seqWindow` sequence numbers, as in the
 *   IPsec anti-replay window (RFC 4303 section 3.4.3): higher than any seen is accepted, a number
 *   already seen or older than the window is refused. The window (rather than "strictly higher")
 *   lets the parts of a multi-datagram STATE be reordered on the way without being lost.
 * - A new incarnation (the sender restarted) is accepted only when its timestamp is later than
 *   the last one accepted from the current incarnation, so a replayed older incarnation cannot
 *   take the sender back in time.
 * - No single message can lock a live sender out (docs/protocol.md, "Replay guard"): a timestamp
 *   may lie at most `maxAheadMs` ahead of the receiver's clock, and the "last timestamp" a
 *   message leaves behind is never later than the receiver's clock when it arrived. So a forged
 *   incarnation (or a forged huge sequence number) from the future is displaced by the live
 *   sender's next datagram, which is newer in time, instead of making it look like a replay for
 *   up to the whole window.
 */

export interface ReplayGuardOptions {
  /** Allowed clock difference either way, ms (default 30 s). */
  readonly windowMs?: number;
  /** How far back a reordered sequence number is still accepted (default 64). */
  readonly seqWindow?: number;
  /** How far ahead of the receiver's clock a timestamp may be, ms (default 5 s, at most windowMs). */
  readonly maxAheadMs?: number;
}

export const DEFAULT_REPLAY_WINDOW_MS = 30_000;
export const DEFAULT_SEQ_WINDOW = 64;
export const DEFAULT_MAX_AHEAD_MS = 5_000;

interface SenderState {
  incarnation: string;
  highest: number;
  /** Sequence numbers seen in (highest - seqWindow, highest]. */
  seen: Set<number>;
  /** Latest timestamp accepted from this incarnation, capped at the receiver's clock then. */
  lastTimestamp: number;
}

export type ReplayVerdict = 'ok' | 'replay';

export class ReplayGuard {
  readonly windowMs: number;
  readonly seqWindow: number;
  readonly maxAheadMs: number;
  private readonly senders = new Map<string, SenderState>();

  constructor(options: ReplayGuardOptions = {}) {
    this.windowMs = options.windowMs ?? DEFAULT_REPLAY_WINDOW_MS;
    this.seqWindow = options.seqWindow ?? DEFAULT_SEQ_WINDOW;
    this.maxAheadMs = Math.min(options.maxAheadMs ?? DEFAULT_MAX_AHEAD_MS, this.windowMs);
    if (!(this.maxAheadMs >= 0)) throw new RangeError(`replay max-ahead must be >= 0 ms, got ${this.maxAheadMs}`);
    if (!(this.windowMs > 0)) throw new RangeError(`replay window must be > 0 ms, got ${this.windowMs}`);
    if (!Number.isInteger(this.seqWindow) || this.seqWindow < 1) throw new RangeError(`sequence window must be >= 1, got ${this.seqWindow}`);
  }

  /** Checks one datagram and, when fresh, records it (so the same datagram is refused next time). */
  admit(sender: string, incarnation: string, seq: number, timestamp: number, now: number): ReplayVerdict {
    if (timestamp < now - this.windowMs || timestamp > now + this.maxAheadMs) return 'replay';
    // What this datagram may prove about time: never later than its arrival here, whatever it
    // claims. So the live sender's next datagram, sent after a forged one arrived, is newer.
    const provenTime = Math.min(timestamp, now);
    const state = this.senders.get(sender);
    if (state === undefined || state.incarnation !== incarnation) {
      if (state !== undefined && timestamp <= state.lastTimestamp) return 'replay';
      this.senders.set(sender, { incarnation, highest: seq, seen: new Set([seq]), lastTimestamp: provenTime });
      return 'ok';
    }
    if (seq > state.highest) {
      state.highest = seq;
      for (const old of state.seen) if (old <= seq - this.seqWindow) state.seen.delete(old);
    } else if (state.seen.has(seq)) {
      return 'replay';
    } else if (seq <= state.highest - this.seqWindow) {
      // Below the window: a replay, unless it is newer in time than anything accepted (then the
      // high sequence number was forged, and the live sender takes its window back).
      if (timestamp <= state.lastTimestamp) return 'replay';
      state.highest = seq;
      state.seen = new Set();
    }
    state.seen.add(seq);
    state.lastTimestamp = Math.max(state.lastTimestamp, provenTime);
    return 'ok';
  }

  /** The incarnation last accepted from `sender`, if any. */
  incarnationOf(sender: string): string | undefined {
    return this.senders.get(sender)?.incarnation;
  }

  /** Drops what is known about a sender (once its datagrams are older than the timestamp window). */
  forget(sender: string): void {
    this.senders.delete(sender);
  }

  get size(): number {
    return this.senders.size;
  }
}
