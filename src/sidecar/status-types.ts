/** The JSON served by the agent's `/status` and read by `kmcast status` and `kmcast doctor`. */

import type { PeerStatus } from '../membership/peer-status.js';
export type { PeerSource, PeerState, PeerStatus } from '../membership/peer-status.js';

export interface AgentStatus {
  readonly version: string;
  readonly podIp: string;
  readonly underlay: string;
  readonly device: string;
  readonly vni: number;
  readonly vxlanPort: number;
  readonly controlPort: number;
  readonly addressing: string;
  readonly unregistered: 'drop' | 'flood';
  /** selective: per-group MDB entries; flood: every peer gets every group (fallback or MDB unsupported). */
  readonly replication: 'selective' | 'flood';
  readonly ready: boolean;
  readonly authenticated: boolean;
  readonly peers: readonly PeerStatus[];
  readonly localGroups: readonly string[];
  /** Present when some: local groups left out of our STATE (over the protocol's limit), so peers do not replicate them to us. */
  readonly unannouncedGroups?: number;
  readonly entries: { readonly fdb: number; readonly mdb: number; readonly routes: number };
  readonly allowList: { readonly installed: boolean; readonly peers: number };
  readonly drops: {
    /** Datagrams to groups nobody joined, dropped by the catch-all entry (vx0 TX carrier errors). */
    readonly unregistered: number;
    /** Control datagrams dropped, by reason (bad_mac, replay, malformed, unknown_peer). */
    readonly control: Readonly<Record<string, number>>;
    /**
     * IPv6 underlay only: packets the pod's kernel could not fragment (Ip6FragFails), which on an
     * IPv6 underlay are VXLAN packets longer than eth0, lost (absent on an IPv4 underlay).
     */
    readonly underlayTooLong?: number;
  };
  /** How sends out of the pod interface reach the overlay (absent from older agents). */
  readonly capture?: {
    /** nft-netdev-egress: a netdev egress chain on the underlay moves them into vx0; off: they stay native. */
    readonly path: 'nft-netdev-egress' | 'off';
    readonly underlay: string;
    readonly installed: boolean;
    /** Frames moved into the overlay since the chain was installed (both families). */
    readonly forwarded: number;
    /** Of those, IPv6 multicast frames (absent from older agents). */
    readonly forwarded6?: number;
    /** ICMPv6 (MLD reports) vx0 sent that the overlay-out chain kept off the overlay. */
    readonly icmp6Dropped?: number;
    /** ICMPv6 that arrived over the overlay (a peer's RA, redirect or MLD) and the overlay-in chain refused. */
    readonly icmp6Refused?: number;
  };
  /** Dual stack: the pod IPv6 address vx0 carries too (absent: vx0 carries IPv4 only or receives IPv6 only). */
  readonly podIp6?: string;
  /** Apps' groups by the interface they joined on (the announced set is their union). */
  readonly groupsByInterface?: Readonly<Record<string, readonly string[]>>;
}
