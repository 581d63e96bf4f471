/**
 * The lab: a simulated Kubernetes cluster built from network namespaces (DESIGN section 5).
 * These shapes are the contract the demo, the privileged tests and the benchmarks build on.
 */

export type NodeStyle = 'calico' | 'bridge';
export const NODE_STYLES: readonly NodeStyle[] = ['calico', 'bridge'];

export interface LabSpec {
  /** Short lab id ([a-z0-9], no dash): every namespace is `kmc<id>-...`. */
  readonly id: string;
  /** One entry per node, in order (node 1 first). */
  readonly nodes: readonly NodeStyle[];
  readonly podsPerNode: number;
  /** Underlay MTU of every link in the lab. */
  readonly mtu: number;
  /** Per node (1-based index): an MTU for its uplink (both ends), bridge and pods instead of `mtu`. */
  readonly nodeMtu?: Readonly<Record<number, number>>;
  /** FQDN answered by the lab DNS, default 'kmcast-peers.default.svc.cluster.local'. */
  readonly service: string;
}

export interface LabNode {
  /** 1-based. */
  readonly index: number;
  readonly netns: string;
  readonly style: NodeStyle;
  readonly underlayIp: string;
  readonly podCidr: string;
}

export interface LabPod {
  /** Short name, e.g. 'n1p2'. */
  readonly name: string;
  readonly netns: string;
  readonly node: number;
  readonly ip: string;
  readonly style: NodeStyle;
}

export interface Lab {
  readonly spec: LabSpec;
  /** The router namespace. */
  readonly router: string;
  readonly dns: { readonly ip: string; readonly port: number };
  readonly nodes: readonly LabNode[];
  /** Mutable: addPod/removePod change it (and the state file). */
  pods: LabPod[];
  readonly stateDir: string;
  /** The outside LAN (lab up --lan, addLan), when the lab has one; attachLanNode changes it. */
  lan?: LabLan;
}

/** A host on the outside LAN: not a pod, not in the cluster. */
export interface LabLanHost {
  /** Short name, e.g. 'h1'. */
  readonly name: string;
  readonly netns: string;
  readonly ip: string;
  readonly ifname: string;
}

/** A lab node's attachment to the LAN: `ifname` in the node's namespace, on switch port `port`. */
export interface LabLanNode {
  readonly node: number;
  readonly netns: string;
  readonly ifname: string;
  readonly ip: string;
  readonly port: string;
}

/** The outside LAN: one switch (a snooping, querying bridge), its hosts and the attached nodes. */
export interface LabLan {
  /** The switch namespace. */
  readonly netns: string;
  readonly bridge: string;
  readonly cidr: string;
  readonly switchIp: string;
  readonly hosts: readonly LabLanHost[];
  nodes: LabLanNode[];
}
