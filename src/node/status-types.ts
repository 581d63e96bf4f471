/** The JSON served by the node agent's `/status` (and read by `kmcast status` for node agents). */
import type { PeerStatus } from '../membership/peer-status.js';
import type { GatewayStatus } from '../gateway/status-types.js';
import type { NotProgrammedReason, PeerNodesStatus } from './api.js';

/** A pod on this node a domain lists but does not capture (/status `refused`). */
export interface RefusedMember {
  readonly podIp: string;
  /** multiple_domains: another domain lists it too; ip_conflict: a second veth claims a member's IP. */
  readonly reason: 'multiple_domains' | 'ip_conflict';
  readonly hostVeth: string;
  /** The domains that list it. */
  readonly domains: readonly string[];
}

export interface NodeMemberStatus {
  readonly podIp: string;
  readonly hostVeth?: string;
  readonly netns?: string;
  readonly groups: readonly string[];
  readonly programmed: boolean;
  readonly reason?: NotProgrammedReason;
  /** The host veth's MTU, when known: longer frames cannot be delivered to the pod. */
  readonly mtu?: number;
  /**
   * IPv6 underlay, a pod MTU over what it carries: the MTU the agent gave the pod's IPv6
   * multicast route, so its kernel fragments multicast to fit (node/pod-routes.ts).
   */
  readonly multicastMtu?: number;
  /**
   * Frames from other nodes this member did not get because they are longer than its MTU (a
   * sender with a larger MTU), since the ruleset was last replaced.
   */
  readonly oversize?: number;
  /** Datagrams it sent with another source address than its own, dropped (absent when none). */
  readonly spoofed?: number;
  /**
   * IPv6 underlay: frames it sent longer than the underlay carries (MTU - 70, never fragmented):
   * same-node members got them, other nodes did not (absent when none).
   */
  readonly overlong?: number;
}

export interface NodeDomainStatus {
  readonly service: string;
  readonly vni: number;
  readonly device: string;
  /** The control protocol's cluster label of the domain. */
  readonly label: string;
  /** Every pod IP the domain's DNS lists. */
  readonly listed: readonly string[];
  /** Those on this node. */
  readonly localMembers: readonly NodeMemberStatus[];
  /** Pods on this node the domain lists but does not capture, with the reason; absent when none. */
  readonly refused?: readonly RefusedMember[];
  /** True while this node announces the domain (it has a local member). */
  readonly announced: boolean;
  readonly groups: readonly string[];
  /** Joined groups left out of the STATE (more than one STATE may carry); absent when none. */
  readonly unannouncedGroups?: number;
  /** The node IP of the domain's active gateway to the outside network, when it has one. */
  readonly gateway?: string;
  readonly peers: readonly PeerStatus[];
  /**
   * The listed peer nodes as local members' readiness sees them: a member is programmed once all
   * are heard, or after the bounded wait (then `degraded`, naming `waitingFor`).
   */
  readonly peerNodes?: PeerNodesStatus;
  readonly entries: { readonly fdb: number; readonly mdb: number };
  /** Frames from other nodes no local member could take (longer than every member's MTU). */
  readonly oversize?: number;
  /** Datagrams local members sent with another source than their own, dropped (absent when none). */
  readonly spoofed?: number;
  /** Frames local members sent that the IPv6 underlay cannot carry to other nodes (absent when none). */
  readonly overlong?: number;
}

export interface NodeStatus {
  readonly mode: 'node';
  readonly version: string;
  /** IPv4, or IPv6 on an IPv6 underlay (the family of every peer node's address). */
  readonly nodeIp: string;
  readonly uplink: string;
  /** The uplink's MTU (absent from older agents): with nodeIp's family, what a member's frame may be (src/node/underlay.ts). */
  readonly underlayMtu?: number;
  readonly vxlanPort: number;
  readonly controlPort: number;
  readonly ready: boolean;
  readonly authenticated: boolean;
  /** Present (true) when the agent runs without a key because --insecure-no-key said so. */
  readonly insecureNoKey?: boolean;
  readonly unregistered: 'drop' | 'flood';
  readonly domains: readonly NodeDomainStatus[];
  readonly ruleset: { readonly installed: boolean; readonly chains: number; readonly lastError?: string };
  /** `dropped`: datagrams the allow-list dropped, by reason (see allowListDrops). */
  readonly allowList: { readonly installed: boolean; readonly peers: number; readonly dropped?: Readonly<Record<string, number>> };
  readonly drops: { readonly control: Readonly<Record<string, number>> };
  /**
   * How members' joins are watched: one `all-nsid` listener, or one monitor per member namespace
   * (no CAP_NET_BROADCAST); `processes`: helper processes running for it; `reads`: namespace
   * reads since start.
   */
  readonly joinWatch?: { readonly mode: 'all-nsid' | 'per-namespace'; readonly processes: number; readonly reads: number };
  /** This node's gateway (--gateway-interface), when it is one. */
  readonly gateway?: GatewayStatus;
}
