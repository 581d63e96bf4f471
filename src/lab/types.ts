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
  /**
   * Per node (1-based index): the pods' MTU (eth0 and host veth) instead of the node's. A CNI that
   * leaves room for an encapsulation (an IPv6 underlay's VXLAN adds 70 bytes, and the kernel
   * never fragments it) gives its pods less than the node has. A node absent: the node's MTU.
   */
  readonly podMtu?: Readonly<Record<number, number>>;
  /** FQDN answered by the lab DNS, default 'kmcast-peers.default.svc.cluster.local'. */
  readonly service: string;
  /**
   * Dual stack (`lab up --ipv6`): every pod also gets an IPv6 address (LabPod.ip6), nodes route
   * the pod /64s through the router over IPv6 uplink addresses, and the lab DNS answers AAAA.
   * Absent (the default) builds the IPv4-only lab, command for command.
   */
  readonly ipv6?: boolean;
  /**
   * IPv6 only (`lab up --ipv6-only`): the dual-stack lab's IPv6 plan without its IPv4 one. The
   * router, the nodes' uplinks and the pods have IPv6 addresses only, the lab DNS listens on an
   * IPv6 address and answers AAAA (no A). Every address field then holds the IPv6 address:
   * LabPod.ip (= ip6), LabNode.underlayIp (= underlayIp6), podCidr (= podCidr6), Lab.dns.ip.
   */
  readonly ipv6Only?: boolean;
}

export interface LabNode {
  /** 1-based. */
  readonly index: number;
  readonly netns: string;
  readonly style: NodeStyle;
  readonly underlayIp: string;
  readonly podCidr: string;
  /** Dual-stack labs only: the node's uplink IPv6 address, fd00:172:31:<i>::2. */
  readonly underlayIp6?: string;
  /** Dual-stack labs only: the node's pod prefix, fd00:10:244:<i>::/64. */
  readonly podCidr6?: string;
}

export interface LabPod {
  /** Short name, e.g. 'n1p2'. */
  readonly name: string;
  readonly netns: string;
  readonly node: number;
  readonly ip: string;
  /** Dual-stack labs only: the pod's IPv6 address, fd00:10:244:<node>::<last octet of ip>. */
  readonly ip6?: string;
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
  /** The Kubernetes cluster (lab up --kubernetes, src/lab/kube), when the lab runs one. */
  kube?: LabKube;
}

/** A lab's Kubernetes cluster: a control-plane namespace and a containerd and kubelet per node. */
export interface LabKube {
  /** The control-plane namespace (etcd, kube-apiserver, kube-controller-manager, kube-scheduler). */
  readonly controlPlane: string;
  /** The API server's address inside the lab, e.g. https://172.31.0.2:6443. */
  readonly apiserver: string;
  /** The admin kubeconfig for the host (server https://127.0.0.1:<hostPort>). */
  readonly kubeconfig: string;
  readonly hostPort: number;
  /** Kubernetes node names, node 1 first. */
  readonly nodes: readonly string[];
  readonly stateDir: string;
  /** containerd's images and snapshots (on disk). */
  readonly dataDir: string;
}

/** A host on the outside LAN: not a pod, not in the cluster. */
export interface LabLanHost {
  /** Short name, e.g. 'h1'. */
  readonly name: string;
  readonly netns: string;
  /** Its IPv4 address; in an IPv6-only lab its IPv6 one (the same as ip6). */
  readonly ip: string;
  /** Its IPv6 address, in a dual-stack or IPv6-only lab. */
  readonly ip6?: string;
  readonly ifname: string;
}

/** A lab node's attachment to the LAN: `ifname` in the node's namespace, on switch port `port`. */
export interface LabLanNode {
  readonly node: number;
  readonly netns: string;
  readonly ifname: string;
  /** Its IPv4 address on the LAN; in an IPv6-only lab its IPv6 one (the same as ip6). */
  readonly ip: string;
  /** Its IPv6 address on the LAN, in a dual-stack or IPv6-only lab. */
  readonly ip6?: string;
  readonly port: string;
}

/** The outside LAN: one switch (a snooping, querying bridge), its hosts and the attached nodes. */
export interface LabLan {
  /** The switch namespace. */
  readonly netns: string;
  readonly bridge: string;
  readonly cidr: string;
  readonly switchIp: string;
  /** Dual stack: the LAN's IPv6 prefix and the switch's address on it. */
  readonly cidr6?: string;
  readonly switchIp6?: string;
  readonly hosts: readonly LabLanHost[];
  nodes: LabLanNode[];
}
