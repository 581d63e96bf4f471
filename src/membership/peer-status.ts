/** How a peer appears in every agent's `/status` (sidecar peers and node-mode peer nodes alike). */

export type PeerState = 'pending' | 'alive' | 'left' | 'expired';
export type PeerSource = 'dns' | 'static' | 'control';

export interface PeerStatus {
  readonly ip: string;
  /** pending: listed (DNS/static) but not heard from; alive: heard within the expiry. */
  readonly state: PeerState;
  /** ISO time of the last valid control message, null if never heard. */
  readonly lastSeen: string | null;
  /** Routable groups the peer's apps joined, as announced in its STATE. */
  readonly groups: readonly string[];
  readonly sources: readonly PeerSource[];
  /** Present when true: silent past the expiry, kept because DNS or --peers still lists it. */
  readonly suspect?: boolean;
  /** Present when some: groups of its STATE beyond the per-peer bound, not replicated to it. */
  readonly groupsTruncated?: number;
}
