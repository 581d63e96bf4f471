/**
 * The contract between the node agent (`kmcast node`, one per node, hostNetwork) and the
 * unprivileged `kmcast wait` init container that node mode injects into member pods. The wait
 * container asks the agent on its own node (status.hostIP) whether its pod (status.podIP) is
 * programmed, so the app never starts before its multicast works ("no deaf start").
 *
 * Pure types and constants only: the agent's HTTP server and the wait client both import them.
 */

/** The node agent's default HTTP port (hostNetwork: must not clash with the sidecar's 9470). */
export const NODE_HTTP_PORT = 9471;
/** The node agents' VXLAN port (distinct from the sidecar's 7471, so both modes can share a node). */
export const NODE_VXLAN_PORT = 7472;
/** The node agents' control port (STATE/LEAVE between node agents). */
export const NODE_CONTROL_PORT = 7473;

/** `GET /v1/pods/<podIP>`: 200 with a PodProgramStatus when the agent knows the pod, 404 otherwise. */
export const POD_STATUS_PATH = '/v1/pods/';

export function podStatusPath(podIp: string): string {
  return `${POD_STATUS_PATH}${podIp}`;
}

/**
 * The domain's peer nodes as a pod's readiness sees them: a pod is programmed only once they are
 * all heard, or a bounded wait (one peer expiry from the agent's start) passed.
 */
export interface PeerNodesStatus {
  /** Peer nodes `--peers-service`/`--peers` list. */
  readonly listed: number;
  /** Of them, heard (and the entries towards them programmed). */
  readonly heard: number;
  /** Not heard yet (or their entries not programmed yet). */
  readonly waitingFor: readonly string[];
  /** True when the bounded wait passed without hearing `waitingFor`: the pod starts without them. */
  readonly degraded: boolean;
  /** The bounded wait, ms (one peer expiry: --peer-expiry x --heartbeat-interval). */
  readonly boundMs: number;
  /** ms of the bounded wait left (0 once it passed). */
  readonly leftMs: number;
}

/**
 * Why a pod is not programmed yet, for the wait container's progress lines:
 * - not_member: no domain (`--service`) lists the pod IP in DNS yet;
 * - not_local: a domain lists it, but its route does not lead to a veth on this node;
 * - no_netns: the veth's peer namespace cannot be opened (runtime netns handles not mounted);
 * - pending: found, capture and delivery not installed yet (the next sync does it);
 * - peers: captured and delivered locally, but the domain's other nodes are not all heard yet
 *   (their members would miss the app's first datagrams); bounded by one peer expiry;
 * - multiple_domains: a pod on this node that two or more domains list: refused by all of them
 *   (whoever can write one Service's endpoints could otherwise pull any pod into their domain);
 * - ip_conflict: the veth the pod IP was first found on still exists but no longer holds it, and
 *   another veth claims it (bridge style: a pod added the IP to its eth0): the newcomer is refused.
 */
export type NotProgrammedReason = 'not_member' | 'not_local' | 'no_netns' | 'pending' | 'peers' | 'multiple_domains' | 'ip_conflict';

export interface PodProgramStatus {
  readonly podIp: string;
  /**
   * True once capture (host veth ingress) and delivery (copies out of the host veth) are installed
   * and read back, and the domain's peer nodes are heard (or the bounded wait passed: `peers.degraded`).
   */
  readonly programmed: boolean;
  readonly reason?: NotProgrammedReason;
  /** The domain (headless Service name) the pod belongs to. */
  readonly domain?: string;
  /** The host side of the pod's veth. */
  readonly hostVeth?: string;
  /** Groups the pod's apps joined on its interface, as read from its namespace. */
  readonly groups?: readonly string[];
  /** The domain's peer nodes, once the pod is captured locally. */
  readonly peers?: PeerNodesStatus;
}
