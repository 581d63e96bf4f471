/**
 * The lint rule catalogue (DESIGN section 6): each rule's id, severity, why and fix. The checks
 * live in lint.ts; docs/kubernetes.md lists the same table.
 */
export type Severity = 'error' | 'warning' | 'info';

export interface Rule {
  readonly id: string;
  readonly name: string;
  readonly severity: Severity;
  readonly why: string;
  readonly fix: string;
}

const rule = (id: string, name: string, severity: Severity, why: string, fix: string): Rule => ({ id, name, severity, why, fix });

export const RULES = {
  groupNotMulticast: rule(
    'KMC101',
    'group-not-multicast',
    'error',
    'A multicast group must lie in 224.0.0.0/4; any other address is unicast or broadcast and no IGMP join or MDB entry applies to it.',
    'Use an administratively scoped group such as 239.1.2.3 (RFC 2365).',
  ),
  groupLinkLocal: rule(
    'KMC102',
    'group-link-local',
    'error',
    '224.0.0.0/24 is the Local Network Control Block (RFC 5771), reserved for routing and discovery protocols: routers never forward it, switches flood it, and the kmcast overlay cannot give it per-group entries, so it always reaches every member.',
    'Pick an application group in 239.0.0.0/8; leave 224.0.0.x to the protocols it is assigned to (mDNS 224.0.0.251 is fine for mDNS).',
  ),
  groupGlop: rule(
    'KMC103',
    'group-glop',
    'warning',
    '233.0.0.0/8 is GLOP space (RFC 3180): globally routable groups statically assigned to the owners of AS numbers. It is not private, and it collides with whoever owns that AS.',
    'Use 239.0.0.0/8 (administratively scoped, the private range for multicast).',
  ),
  groupSsmWithoutSource: rule(
    'KMC104',
    'group-ssm-without-source',
    'error',
    '232.0.0.0/8 is Source-Specific Multicast (RFC 4607): receivers must join (source, group) with IGMPv3; an any-source join of a 232.x group delivers nothing on SSM-aware networks.',
    'Configure the source address next to the group (an INCLUDE-mode join), or move the group to 239.0.0.0/8.',
  ),
  groupNotAdminScoped: rule(
    'KMC105',
    'group-not-admin-scoped',
    'info',
    'Groups outside 239.0.0.0/8 are globally scoped and may be assigned by IANA to someone else; traffic that leaks off the cluster reaches other networks.',
    'Use 239.0.0.0/8 for private groups (RFC 2365); 239.255.0.0/16 is the site-local part.',
  ),
  groupMacAlias: rule(
    'KMC106',
    'group-mac-alias',
    'warning',
    'IPv4 groups map to Ethernet MACs by their low 23 bits (RFC 1112), IPv6 groups by their low 32 bits (RFC 2464): groups that share those bits share one MAC, so NICs, bridges and snooping switches deliver both groups to every host that joined either, and the kernel drops the unwanted one only after the interrupt.',
    'Choose groups that differ within their low 23 bits, e.g. 239.1.1.1 and 239.1.1.2 rather than 239.1.1.1 and 239.129.1.1 (IPv6: within their low 32 bits, e.g. ff05::1:3 and ff05::1:4 rather than ff05::1:3 and ff08::1:3).',
  ),
  group6Scope: rule(
    'KMC107',
    'group6-scope',
    'error',
    'An IPv6 group of interface-local scope (ffX1::) never leaves the host that sends it, and scopes 0 and 15 are reserved (RFC 4291 2.7, RFC 7346): no other pod ever receives such a group, with or without kmcast.',
    'Use a site-local group such as ff05::1:3 (scope 5), or ff08:: (organization) for wider reach; link-local ff02:: reaches every member but gets no per-group replication.',
  ),
  group6Reserved: rule(
    'KMC108',
    'group6-reserved',
    'error',
    'ff02::1 (all nodes), ff02::2 (all routers), ff02::16 (MLDv2 reports) and the solicited-node groups ff02::1:ffXX:XXXX belong to Neighbor Discovery and MLD: every IPv6 host listens to them, kmcast never carries ICMPv6 to them, and an application sending there disturbs every pod on the link.',
    'Pick an application group such as ff05::1:3 (site-local) or a link-local group of your own in ff02::/16 other than these.',
  ),
  group6SsmWithoutSource: rule(
    'KMC109',
    'group6-ssm-without-source',
    'error',
    'ff3X::/32 is IPv6 Source-Specific Multicast (RFC 4607): receivers must join (source, group) with MLDv2; an any-source join of such a group delivers nothing on SSM-aware networks.',
    'Configure the source address next to the group (an INCLUDE-mode join), or move the group to ff05::/16.',
  ),
  group6Global: rule(
    'KMC110',
    'group6-global-scope',
    'info',
    'ffXe:: groups are global scope: routable on the Internet and possibly assigned by IANA to someone else; traffic that leaks off the cluster reaches other networks.',
    'Use site-local (ff05::/16) or organization-local (ff08::/16) groups for private traffic.',
  ),
  flannelEnableMulticast: rule(
    'KMC201',
    'flannel-enable-multicast',
    'error',
    'Flannel has no EnableMulticast option; it ignores unknown keys silently, so the setting changes nothing and multicast still does not cross nodes.',
    'Remove the key. For multicast between pods use kmcast (kmcast inject) or a secondary network (kmcast generate --mode multus).',
  ),
  ipvlanL3: rule(
    'KMC202',
    'ipvlan-l3-multicast',
    'error',
    'ipvlan in l3/l3s mode routes at layer 3 and does not pass multicast or broadcast between slaves or to the parent link.',
    'Use ipvlan "mode": "l2" or macvlan "mode": "bridge" for a multicast secondary network.',
  ),
  macvlanNotBridge: rule(
    'KMC203',
    'macvlan-not-bridge',
    'warning',
    'macvlan in private mode drops traffic between macvlan interfaces of one parent, and vepa mode needs a hairpin-capable switch; multicast between pods on the same node is lost.',
    'Use "mode": "bridge".',
  ),
  noMulticastRoute: rule(
    'KMC204',
    'secondary-net-no-multicast-route',
    'warning',
    'Without a 224.0.0.0/4 route on the secondary interface, sends to a group follow the default route out of eth0, the cluster network, which does not carry multicast between nodes.',
    'Add {"dst": "224.0.0.0/4"} to the IPAM "routes" of the attachment (kmcast generate --mode multus does).',
  ),
  headlessForMulticast: rule(
    'KMC301',
    'headless-service-for-multicast',
    'warning',
    "A Service, headless (clusterIP: None) or not, never carries multicast: a headless Service only publishes the pods' IPs in DNS.",
    'Keep the headless Service for discovery and carry multicast over kmcast (kmcast inject) or a multicast-capable secondary network.',
  ),
  vipForMulticast: rule(
    'KMC302',
    'service-vip-for-multicast',
    'error',
    'kube-proxy (iptables or IPVS), load balancers and MetalLB forward unicast to a Service VIP; they neither forward multicast nor make a Service address a group.',
    'Send to the group address from the pods themselves, with kmcast (kmcast inject) providing delivery between nodes.',
  ),
  policyForMulticast: rule(
    'KMC303',
    'networkpolicy-for-multicast',
    'warning',
    'NetworkPolicy selects pod-to-pod unicast by pod, namespace and IP block; how a CNI treats multicast under a policy is unspecified (most ignore policies for it, some drop it). With kmcast the traffic is unicast VXLAN between member pods.',
    'Allow the members to reach each other on the kmcast VXLAN and control ports (UDP 7471 and 7470; kmcast inject emits that policy) instead of policies on group addresses.',
  ),
  udpWithoutProtocol: rule('KMC304', 'udp-port-without-protocol', 'error', 'A Service port without protocol is TCP; UDP datagrams to it are never forwarded.', 'Add protocol: UDP to the port.'),
  hostNetworkDnsPolicy: rule(
    'KMC305',
    'hostnetwork-dns-policy',
    'error',
    "With hostNetwork: true the default dnsPolicy (ClusterFirst) falls back to the node's resolver, so cluster Service names (such as the headless Service of the members) do not resolve.",
    'Set dnsPolicy: ClusterFirstWithHostNet.',
  ),
  ipMaddrAdd: rule(
    'KMC306',
    'ip-maddr-add',
    'error',
    '`ip maddr add` only adds a link-layer address to the interface filter; it does not join an IP group, sends no IGMP report and no socket receives anything because of it.',
    'Join from the application socket (IP_ADD_MEMBERSHIP), or `ip addr add ADDR dev IF autojoin` for a test; kmcast sees joins on vx0 automatically.',
  ),
  vxlanPortConflict: rule(
    'KMC307',
    'vxlan-port-conflict',
    'error',
    'UDP 4789, 8472 and 6081 are the tunnel ports of Calico, Flannel, Cilium and OpenShift SDN; these CNIs drop pod-originated traffic to them, which silently kills a pod-level VXLAN.',
    'Keep the kmcast default --vxlan-port 7471 (or any other unused port).',
  ),
  hostNetworkAntiAffinity: rule(
    'KMC308',
    'hostnetwork-no-anti-affinity',
    'warning',
    "Two replicas with hostNetwork: true on one node share the node's ports: the second fails to bind the group port, or both receive every datagram once per socket.",
    'Add a required podAntiAffinity on kubernetes.io/hostname (or use a DaemonSet) so there is one pod per node.',
  ),
  podSecurityEnforced: rule(
    'KMC401',
    'pod-security-enforced',
    'error',
    'The namespace enforces a Pod Security level (pod-security.kubernetes.io/enforce) that this pod violates, so the API server rejects it: a Deployment shows no pods, only FailedCreate events. The kmcast sidecar needs NET_ADMIN and uid 0, which baseline and restricted forbid.',
    'For multicast without privilege use kmcast inject --mode node (the kmcast-node DaemonSet serves the pods, which then pass restricted); otherwise change the field named in the message.',
  ),
} as const satisfies Record<string, Rule>;

export const RULE_LIST: readonly Rule[] = Object.values(RULES);
