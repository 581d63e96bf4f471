/**
 * The peer-expiry rule, one for both modes (the sidecar's peers are pods, the node agent's are
 * nodes): the flags (--heartbeat-interval, --peer-expiry, --listed-peer-expiry) become the
 * PeerTable's timing, and `ExpiryClock` runs `expire` on the tick the stall accounting assumes
 * and reports what changed. Why the rule is what it is: peers.ts and docs/architecture.md ("A
 * listed peer is suspect before it is removed").
 */
import type { PeerTable, PeerTableOptions } from './peers.js';

/** --listed-peer-expiry when not given: this many times --peer-expiry. */
export const LISTED_EXPIRY_FACTOR = 3;

export interface ExpiryFlags {
  readonly heartbeatMs: number;
  /** Heartbeats an unlisted peer may miss. */
  readonly peerExpiry: number;
  /** Heartbeats a peer still listed by DNS or --peers may miss (suspect from peerExpiry on). */
  readonly listedPeerExpiry: number;
}

/**
 * --listed-peer-expiry from its flag value (undefined: the default) and --peer-expiry: the value,
 * or why it is refused (the caller names the flag).
 */
export function listedPeerExpiry(peerExpiry: number, given: number | undefined): { value: number } | { error: string } {
  if (given === undefined) return { value: LISTED_EXPIRY_FACTOR * peerExpiry };
  if (given < peerExpiry) return { error: `${given} must be at least --peer-expiry (${peerExpiry})` };
  return { value: given };
}

/** How often peers' silence is checked: a quarter heartbeat (at least 50 ms). */
export function expireTickMs(heartbeatMs: number): number {
  return Math.max(50, Math.floor(heartbeatMs / 4));
}

/** The PeerTable timing the flags give. */
export function peerTableTiming(f: ExpiryFlags): Required<Pick<PeerTableOptions, 'expiryMs' | 'listedExpiryMs' | 'tickMs'>> {
  return { expiryMs: f.peerExpiry * f.heartbeatMs, listedExpiryMs: f.listedPeerExpiry * f.heartbeatMs, tickMs: expireTickMs(f.heartbeatMs) };
}

export interface ExpiryTick {
  /** Peers removed by this tick (remove their entries). */
  readonly expired: string[];
  /** The suspect set, when it changed since the last tick (undefined: unchanged). */
  readonly suspects: string[] | undefined;
}

/** Runs one table's `expire` and remembers its suspects, so a change is reported once. */
export class ExpiryClock {
  private suspectKey = '';

  tick(table: PeerTable, now: number): ExpiryTick {
    const expired = table.expire(now);
    const suspects = table.suspects();
    const key = suspects.join(',');
    if (key === this.suspectKey) return { expired, suspects: undefined };
    this.suspectKey = key;
    return { expired, suspects };
  }
}

/** The log lines of a tick, the same words in both modes (operations.md refers to them). */
export const EXPIRED_MESSAGE = 'peers expired (silent for longer than the expiry)';
export const SUSPECT_MESSAGE = 'peers suspect (silent past the expiry, still listed: entries kept until --listed-peer-expiry)';
