/**
 * Pure address plan, names and command lists of the lab. Nothing here touches the kernel: lab.ts
 * runs these argv lists through a Runner, and the unit tests assert them exactly.
 *
 * Plan (node i, pod k, both 1-based):
 *   router `kmc<id>-r`, lo 10.96.0.10/32 (the lab DNS), link `kmcn<i>` 172.31.<i>.1/24
 *   node   `kmc<id>-n<i>`, link `kmcup` 172.31.<i>.2/24, default via 172.31.<i>.1
 *   pods   `kmc<id>-n<i>p<k>`, eth0 10.244.<i>.<10+k> (/32 on calico nodes, /24 on bridge nodes)
 *
 * Dual stack (spec.ipv6), beside the IPv4 plan and written with the same digits:
 *   router `kmcn<i>` fd00:172:31:<i>::1/64, routes fd00:10:244:<i>::/64 via fd00:172:31:<i>::2
 *   node   `kmcup` fd00:172:31:<i>::2/64, default via fd00:172:31:<i>::1; bridge kmcbr fd00:10:244:<i>::1/64
 *   pods   eth0 fd00:10:244:<i>::<10+k> (/128 behind fe80::ecee:eeff:feee:eeee on calico nodes,
 *          /64 on bridge nodes, default via fd00:10:244:<i>::1)
 *
 * IPv6 only (spec.ipv6Only): the IPv6 plan above without any IPv4 address or route; the router's
 * lo holds the lab DNS at fd00:10:96::10 instead of 10.96.0.10.
 */
import { ConfigError, NotFoundError } from '../errors.js';
import type { Lab, LabNode, LabPod, LabSpec, NodeStyle } from './types.js';
import { NODE_STYLES } from './types.js';

export const NETNS_PREFIX = 'kmc';
export const DEFAULT_SERVICE = 'kmcast-peers.default.svc.cluster.local';
export const DEFAULT_LAB_ID = 'lab';
export const DNS_IP = '10.96.0.10';
export const DNS_PORT = 53;
/** The lab DNS of an IPv6-only lab (10.96.0.10's twin). */
export const DNS_IP6 = 'fd00:10:96::10';
/** Calico's fixed pod gateway: a link-local address answered by proxy-ARP on the host veth. */
export const CALICO_GATEWAY = '169.254.1.1';
export const STATE_ROOT = '/run/kmcast/labs';
export const MAX_NODES = 200;
/** 10 + k must stay a host address of the /24. */
export const MAX_PODS_PER_NODE = 240;
/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;

/** A step of the build: one argv, run in `netns` (undefined = the caller's namespace). */
export interface LabCommand {
  readonly argv: readonly string[];
  readonly netns?: string;
}

export function validateLabId(id: string): string {
  if (!/^[a-z0-9]{1,12}$/.test(id)) {
    throw new ConfigError(
      `invalid lab id ${JSON.stringify(id)}: use 1-12 lowercase letters or digits (it becomes part of every namespace name, e.g. kmc${'<id>'}-n1)`,
      { fields: { field: 'id' } },
    );
  }
  return id;
}

export const routerNetns = (id: string): string => `${NETNS_PREFIX}${id}-r`;
export const nodeNetns = (id: string, node: number): string => `${NETNS_PREFIX}${id}-n${node}`;
export const podShortName = (node: number, k: number): string => `n${node}p${k}`;
export const podNetns = (id: string, node: number, k: number): string => `${NETNS_PREFIX}${id}-${podShortName(node, k)}`;
/** Router-side end of node i's uplink (in the router namespace). */
export const routerLink = (node: number): string => `kmcn${node}`;
/** Node-side end of the uplink (in the node namespace). */
export const NODE_UPLINK = 'kmcup';
export const NODE_BRIDGE = 'kmcbr';
/** Node-side end of pod k's veth (in the node namespace); the pod side is `eth0`. */
export const podHostLink = (k: number): string => `kmcv${k}`;

/** The prefix every namespace of lab `id` starts with; the dash keeps `t1` from matching `t12`. */
export const labNetnsPrefix = (id: string): string => `${NETNS_PREFIX}${id}-`;
export const labStateDir = (id: string): string => `${STATE_ROOT}/${id}`;

/** The lab id a lab namespace name belongs to (router, control plane, node, pod, LAN switch or LAN host), or undefined for any other name. */
export function labIdOfNetns(netns: string): string | undefined {
  const m = /^kmc([a-z0-9]{1,12})-(r|cp|n\d+(p\d+)?|lan|h\d+)$/.exec(netns);
  return m?.[1];
}

/** Pod k of node `node` as a name pair, e.g. { node: 1, k: 2 } from 'n1p2'. */
export function parsePodShortName(name: string): { node: number; k: number } | undefined {
  const m = /^n(\d+)p(\d+)$/.exec(name);
  return m ? { node: Number(m[1]), k: Number(m[2]) } : undefined;
}

export const underlayRouterIp = (node: number): string => `172.31.${node}.1`;
export const underlayNodeIp = (node: number): string => `172.31.${node}.2`;
export const podCidr = (node: number): string => `10.244.${node}.0/24`;
export const bridgeGateway = (node: number): string => `10.244.${node}.1`;
export const podIp = (node: number, k: number): string => `10.244.${node}.${10 + k}`;

// IPv6 (dual-stack labs): the IPv4 plan's numbers written as hex groups, so fd00:10:244:2::11 is
// 10.244.2.11's twin at a glance. Every group is at most 250, hence canonical (RFC 5952) as written
// and printed by the kernel exactly so.
export const underlayRouterIp6 = (node: number): string => `fd00:172:31:${node}::1`;
export const underlayNodeIp6 = (node: number): string => `fd00:172:31:${node}::2`;
export const podCidr6 = (node: number): string => `fd00:10:244:${node}::/64`;
export const bridgeGateway6 = (node: number): string => `fd00:10:244:${node}::1`;
/** The IPv6 twin of pod IPv4 10.244.<node>.<host>: fd00:10:244:<node>::<host>. */
export function podIp6Of(ip: string): string {
  const m = /^10\.244\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw new ConfigError(`plan the IPv6 address of pod IP ${JSON.stringify(ip)}: not a lab pod address (10.244.<node>.<host>)`);
  return `fd00:10:244:${Number(m[1])}::${Number(m[2])}`;
}
export const podIp6 = (node: number, k: number): string => podIp6Of(podIp(node, k));
/**
 * Calico's IPv6 pod gateway. Calico gives every host-side veth the MAC ee:ee:ee:ee:ee:ee, so its
 * EUI-64 link-local address is this one; the CNI plugin routes the pod's default via the host
 * veth's link-local address, which the host answers ND for because it owns it (Felix also sets
 * proxy_ndp=1 on the veth, the IPv6 mirror of proxy_arp).
 */
export const CALICO_GATEWAY6 = 'fe80::ecee:eeff:feee:eeee';
export const CALICO_HOST_MAC = 'ee:ee:ee:ee:ee:ee';

/** `host:port`, an IPv6 host in brackets (`[fd00:10:96::10]:53`): how the lab writes an endpoint. Pure. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The lab DNS's address: IPv6 in an IPv6-only lab. */
export const dnsIpOf = (spec: Pick<LabSpec, 'ipv6Only'>): string => (spec.ipv6Only ? DNS_IP6 : DNS_IP);

/** `--nodes` value: a count (styles alternate calico, bridge, ...) or a comma list of styles. */
export function parseNodes(value: string): NodeStyle[] {
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    if (n < 1 || n > MAX_NODES) {
      throw new ConfigError(`invalid --nodes ${v}: a lab has 1 to ${MAX_NODES} nodes`, { fields: { field: 'nodes' } });
    }
    return Array.from({ length: n }, (_, i) => NODE_STYLES[i % NODE_STYLES.length] as NodeStyle);
  }
  const styles = v.split(',').map((s) => s.trim());
  for (const s of styles) {
    if (!(NODE_STYLES as readonly string[]).includes(s)) {
      throw new ConfigError(
        `invalid --nodes ${JSON.stringify(value)}: unknown node style ${JSON.stringify(s)}; use a count (e.g. 3) or a comma list of ${NODE_STYLES.join(', ')} (e.g. calico,bridge,calico)`,
        { fields: { field: 'nodes' } },
      );
    }
  }
  if (styles.length > MAX_NODES) {
    throw new ConfigError(`invalid --nodes: a lab has 1 to ${MAX_NODES} nodes`, { fields: { field: 'nodes' } });
  }
  return styles as NodeStyle[];
}

function intInRange(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`invalid --${field} ${String(value)}: must be an integer from ${min} to ${max}`, { fields: { field } });
  }
  return value;
}

/** Defaults, then validation with messages that name the flag. `minPods` 0 lets a lab have no
 * namespace pods of its own (a Kubernetes lab, whose pods come from its kubelets). */
export function buildSpec(input: Partial<LabSpec> = {}, opts: { minPods?: number } = {}): LabSpec {
  if (input.ipv6 && input.ipv6Only) throw new ConfigError('invalid --ipv6 with --ipv6-only: give one (--ipv6 builds a dual-stack lab, --ipv6-only one without IPv4)', { fields: { field: 'ipv6Only' } });
  const nodes = input.nodes ?? ['calico', 'bridge', 'calico'];
  if (nodes.length < 1 || nodes.length > MAX_NODES) {
    throw new ConfigError(`invalid --nodes: a lab has 1 to ${MAX_NODES} nodes`, { fields: { field: 'nodes' } });
  }
  for (const s of nodes) {
    if (!NODE_STYLES.includes(s)) throw new ConfigError(`invalid node style ${JSON.stringify(s)}: use ${NODE_STYLES.join(' or ')}`, { fields: { field: 'nodes' } });
  }
  const service = (input.service ?? DEFAULT_SERVICE).replace(/\.$/, '').toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(service)) {
    throw new ConfigError(`invalid --service ${JSON.stringify(input.service)}: use a DNS name such as ${DEFAULT_SERVICE}`, {
      fields: { field: 'service' },
    });
  }
  return {
    id: validateLabId(input.id ?? DEFAULT_LAB_ID),
    nodes: [...nodes],
    podsPerNode: intInRange('pods', input.podsPerNode ?? 2, opts.minPods ?? 1, MAX_PODS_PER_NODE),
    // 1280 is IPv6's minimum link MTU; 9000 is a jumbo frame. (On an IPv6-only lab a pod frame must
    // also fit the underlay less VXLAN over IPv6's 70 bytes: --pod-mtu, docs/node-mode.md.)
    mtu: intInRange('mtu', input.mtu ?? 1500, 1280, 9000),
    ...(input.nodeMtu ? { nodeMtu: Object.fromEntries(Object.entries(input.nodeMtu).map(([n, m]) => [n, intInRange('mtu', m, 1280, 9000)])) } : {}),
    ...(input.podMtu ? { podMtu: Object.fromEntries(Object.entries(input.podMtu).map(([n, m]) => [n, intInRange('pod-mtu', m, 1280, 9000)])) } : {}),
    service,
    ...(input.ipv6 ? { ipv6: true } : {}),
    ...(input.ipv6Only ? { ipv6Only: true } : {}),
  };
}

/** The MTU of node `node`'s links and pods. Pure. */
export function mtuOf(spec: LabSpec, node: number): number {
  return spec.nodeMtu?.[node] ?? spec.mtu;
}

/** The MTU of node `node`'s pods (eth0 and host veth): spec.podMtu's, else the node's. Pure. */
export function podMtuOf(spec: LabSpec, node: number): number {
  return spec.podMtu?.[node] ?? mtuOf(spec, node);
}

export function planNode(spec: LabSpec, index: number): LabNode {
  const style = spec.nodes[index - 1];
  if (style === undefined) throw new NotFoundError(`find node ${index}: the lab has nodes 1 to ${spec.nodes.length}`);
  const v6 = { underlayIp6: underlayNodeIp6(index), podCidr6: podCidr6(index) };
  if (spec.ipv6Only) return { index, netns: nodeNetns(spec.id, index), style, underlayIp: v6.underlayIp6, podCidr: v6.podCidr6, ...v6 };
  return {
    index,
    netns: nodeNetns(spec.id, index),
    style,
    underlayIp: underlayNodeIp(index),
    podCidr: podCidr(index),
    ...(spec.ipv6 ? v6 : {}),
  };
}

/**
 * Pod k of `node`. Its IP is 10.244.<node>.<10+k> unless `ip` is given: a pod re-created with a
 * deleted pod's IP (a StatefulSet pod, or IPAM handing the freed address out again), which must
 * lie in the node's pod CIDR.
 */
export function planPod(spec: LabSpec, node: number, k: number, ip?: string): LabPod {
  const n = planNode(spec, node);
  if (!Number.isInteger(k) || k < 1 || k > MAX_PODS_PER_NODE) {
    throw new ConfigError(`plan pod ${k} on node ${node}: a node holds pods 1 to ${MAX_PODS_PER_NODE}`);
  }
  if (spec.ipv6Only) {
    // The IPv4 plan's host number picks the IPv6 address: a re-created pod's IP is given as IPv6.
    const host = ip === undefined ? 10 + k : ipv6PodHost(ip, node);
    if (host === undefined) throw new ConfigError(`plan pod ${k} on node ${node}: ${JSON.stringify(ip)} is not a host address of the node's pod prefix ${podCidr6(node)} (fd00:10:244:${node}::2 to ::250)`);
    const addr6 = podIp6Of(`10.244.${node}.${host}`);
    return { name: podShortName(node, k), netns: podNetns(spec.id, node, k), node, ip: addr6, ip6: addr6, style: n.style };
  }
  if (ip !== undefined && !isPodIpOfNode(ip, node)) {
    throw new ConfigError(`plan pod ${k} on node ${node}: ${JSON.stringify(ip)} is not a host address of the node's pod CIDR ${podCidr(node)} (10.244.${node}.2 to .250)`);
  }
  const addr = ip ?? podIp(node, k);
  return { name: podShortName(node, k), netns: podNetns(spec.id, node, k), node, ip: addr, ...(spec.ipv6 ? { ip6: podIp6Of(addr) } : {}), style: n.style };
}

/** The host number of an IPv6-only lab pod address fd00:10:244:<node>::<2..250>, or undefined. */
function ipv6PodHost(ip: string, node: number): number | undefined {
  const m = /^fd00:10:244:(\d{1,3})::(\d{1,3})$/.exec(ip);
  const host = m ? Number(m[2]) : NaN;
  return m !== null && Number(m[1]) === node && host >= 2 && host <= 10 + MAX_PODS_PER_NODE ? host : undefined;
}

/** True for 10.244.<node>.<2..250>: never the bridge gateway (.1), within what podIp hands out. */
export function isPodIpOfNode(ip: string, node: number): boolean {
  const m = /^10\.244\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  return m !== null && Number(m[1]) === node && Number(m[2]) >= 2 && Number(m[2]) <= 10 + MAX_PODS_PER_NODE;
}

/** The whole lab as planned, before anything exists. */
export function planLab(spec: LabSpec): Lab {
  const nodes = spec.nodes.map((_, i) => planNode(spec, i + 1));
  const pods = nodes.flatMap((n) => Array.from({ length: spec.podsPerNode }, (_, k) => planPod(spec, n.index, k + 1)));
  return { spec, router: routerNetns(spec.id), dns: { ip: dnsIpOf(spec), port: DNS_PORT }, nodes, pods, stateDir: labStateDir(spec.id) };
}

/** Every address of a pod: its IPv4 one, then its IPv6 one in a dual-stack lab (the Service's A and AAAA members); an IPv6-only pod's one. */
export function podAddresses(pod: Pick<LabPod, 'ip' | 'ip6'>): string[] {
  return pod.ip6 === undefined || pod.ip6 === pod.ip ? [pod.ip] : [pod.ip, pod.ip6];
}

/** The pod index k of a pod (from its short name). */
export function podIndex(pod: LabPod): number {
  const p = parsePodShortName(pod.name);
  if (!p) throw new NotFoundError(`read pod index: ${JSON.stringify(pod.name)} is not a lab pod name (n<node>p<k>)`);
  return p.k;
}

/** The next free pod index on `node`: one past the highest in use, so names are never reused. */
export function nextPodIndex(pods: readonly LabPod[], node: number): number {
  let max = 0;
  for (const p of pods) if (p.node === node) max = Math.max(max, podIndex(p));
  return max + 1;
}

const sysctl = (netns: string, key: string, value: string | number): LabCommand => ({
  argv: ['sysctl', '-q', '-w', `${key}=${value}`],
  netns,
});

/**
 * Dual stack: the first steps in every new namespace, before any of its links exists (a link takes
 * its IPv6 settings from `default` when it is created or moved in). DAD is off instead of waited
 * out: every lab address is planned unique, so detection can only find nothing, yet each address
 * (and every link-local one) would stay tentative for about a second, unusable as a source or as
 * the gateway a pod asks ND for; on a loaded machine that wait multiplies across the lab. The
 * kernel skips DAD only when both `all` and the link's own accept_dad are 0.
 */
function ipv6NetnsSetup(spec: LabSpec, netns: string): LabCommand[] {
  if (!spec.ipv6 && !spec.ipv6Only) return [];
  return [sysctl(netns, 'net.ipv6.conf.all.accept_dad', 0), sysctl(netns, 'net.ipv6.conf.default.accept_dad', 0)];
}

/** Router: forwards unicast only. There is no multicast routing daemon and no mroute table entry, so
 * multicast is never forwarded, like a cloud VPC; limited broadcast is never forwarded by IP. */
export function routerCommands(spec: LabSpec): LabCommand[] {
  const r = routerNetns(spec.id);
  if (spec.ipv6Only) {
    return [
      { argv: ['ip', 'netns', 'add', r] },
      ...ipv6NetnsSetup(spec, r),
      { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: r },
      { argv: ['ip', '-6', 'addr', 'add', `${DNS_IP6}/128`, 'dev', 'lo'], netns: r },
      sysctl(r, 'net.ipv6.conf.all.forwarding', 1),
    ];
  }
  return [
    { argv: ['ip', 'netns', 'add', r] },
    { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: r },
    { argv: ['ip', 'addr', 'add', `${DNS_IP}/32`, 'dev', 'lo'], netns: r },
    sysctl(r, 'net.ipv4.ip_forward', 1),
    // IPv6 multicast is no more forwarded than IPv4's: that too needs a daemon holding the mroute6
    // socket (none runs), so forwarding=1 routes unicast only.
    ...(spec.ipv6 ? [...ipv6NetnsSetup(spec, r), sysctl(r, 'net.ipv6.conf.all.forwarding', 1)] : []),
  ];
}

/** A node namespace, its uplink to the router, and (bridge style) the node bridge. */
export function nodeCommands(spec: LabSpec, node: number): LabCommand[] {
  const r = routerNetns(spec.id);
  const n = planNode(spec, node);
  const mtu = String(mtuOf(spec, node));
  if (spec.ipv6Only) return nodeCommands6Only(spec, n, mtu);
  const cmds: LabCommand[] = [
    { argv: ['ip', 'netns', 'add', n.netns] },
    { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: n.netns },
    sysctl(n.netns, 'net.ipv4.ip_forward', 1),
    ...(spec.ipv6 ? [...ipv6NetnsSetup(spec, n.netns), sysctl(n.netns, 'net.ipv6.conf.all.forwarding', 1)] : []),
    // Created inside the router namespace with the peer placed straight into the node's: nothing
    // ever appears in the root namespace, even for a moment.
    { argv: ['ip', 'link', 'add', routerLink(node), 'type', 'veth', 'peer', 'name', NODE_UPLINK, 'netns', n.netns], netns: r },
    { argv: ['ip', 'addr', 'add', `${underlayRouterIp(node)}/24`, 'dev', routerLink(node)], netns: r },
    { argv: ['ip', 'link', 'set', routerLink(node), 'mtu', mtu, 'up'], netns: r },
    { argv: ['ip', 'addr', 'add', `${underlayNodeIp(node)}/24`, 'dev', NODE_UPLINK], netns: n.netns },
    { argv: ['ip', 'link', 'set', NODE_UPLINK, 'mtu', mtu, 'up'], netns: n.netns },
    { argv: ['ip', 'route', 'add', 'default', 'via', underlayRouterIp(node)], netns: n.netns },
    { argv: ['ip', 'route', 'add', podCidr(node), 'via', underlayNodeIp(node)], netns: r },
  ];
  if (spec.ipv6) {
    // The pod /64 is routed exactly like the pod /24: by the router, over the uplink's IPv6 addresses.
    cmds.push(
      { argv: ['ip', '-6', 'addr', 'add', `${underlayRouterIp6(node)}/64`, 'dev', routerLink(node)], netns: r },
      { argv: ['ip', '-6', 'addr', 'add', `${underlayNodeIp6(node)}/64`, 'dev', NODE_UPLINK], netns: n.netns },
      { argv: ['ip', '-6', 'route', 'add', 'default', 'via', underlayRouterIp6(node)], netns: n.netns },
      { argv: ['ip', '-6', 'route', 'add', podCidr6(node), 'via', underlayNodeIp6(node)], netns: r },
    );
  }
  if (n.style === 'bridge') {
    cmds.push(
      { argv: ['ip', 'link', 'add', NODE_BRIDGE, 'type', 'bridge'], netns: n.netns },
      { argv: ['ip', 'addr', 'add', `${bridgeGateway(node)}/24`, 'dev', NODE_BRIDGE], netns: n.netns },
      ...(spec.ipv6 ? [{ argv: ['ip', '-6', 'addr', 'add', `${bridgeGateway6(node)}/64`, 'dev', NODE_BRIDGE], netns: n.netns }] : []),
      { argv: ['ip', 'link', 'set', NODE_BRIDGE, 'mtu', mtu, 'up'], netns: n.netns },
    );
  }
  return cmds;
}

/** nodeCommands of an IPv6-only lab: the dual-stack node's IPv6 steps alone. */
function nodeCommands6Only(spec: LabSpec, n: LabNode, mtu: string): LabCommand[] {
  const r = routerNetns(spec.id);
  const node = n.index;
  const cmds: LabCommand[] = [
    { argv: ['ip', 'netns', 'add', n.netns] },
    ...ipv6NetnsSetup(spec, n.netns),
    { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: n.netns },
    sysctl(n.netns, 'net.ipv6.conf.all.forwarding', 1),
    { argv: ['ip', 'link', 'add', routerLink(node), 'type', 'veth', 'peer', 'name', NODE_UPLINK, 'netns', n.netns], netns: r },
    { argv: ['ip', '-6', 'addr', 'add', `${underlayRouterIp6(node)}/64`, 'dev', routerLink(node)], netns: r },
    { argv: ['ip', 'link', 'set', routerLink(node), 'mtu', mtu, 'up'], netns: r },
    { argv: ['ip', '-6', 'addr', 'add', `${underlayNodeIp6(node)}/64`, 'dev', NODE_UPLINK], netns: n.netns },
    { argv: ['ip', 'link', 'set', NODE_UPLINK, 'mtu', mtu, 'up'], netns: n.netns },
    { argv: ['ip', '-6', 'route', 'add', 'default', 'via', underlayRouterIp6(node)], netns: n.netns },
    { argv: ['ip', '-6', 'route', 'add', podCidr6(node), 'via', underlayNodeIp6(node)], netns: r },
  ];
  if (n.style === 'bridge') {
    cmds.push(
      { argv: ['ip', 'link', 'add', NODE_BRIDGE, 'type', 'bridge'], netns: n.netns },
      { argv: ['ip', '-6', 'addr', 'add', `${bridgeGateway6(node)}/64`, 'dev', NODE_BRIDGE], netns: n.netns },
      { argv: ['ip', 'link', 'set', NODE_BRIDGE, 'mtu', mtu, 'up'], netns: n.netns },
    );
  }
  return cmds;
}

/** The table `masqueradeScript` creates in a node namespace. */
export const MASQUERADE_TABLE = 'kmclabmasq';

/**
 * What Flannel's ip-masq and Calico's natOutgoing do: pod traffic leaving the node by its uplink
 * gets the node's address (the receiving node sees the node IP, never the pod's). For `nft -f -`
 * in the node namespace; atomic replace, so it can be applied twice.
 */
export function masqueradeScript(spec: LabSpec, node: number): string {
  if (spec.ipv6Only) throw new ConfigError(`masquerade node ${node}'s pods: an IPv6-only lab has no IPv4 to masquerade (pods keep their own IPv6 addresses, as IPv6 CNIs route them)`);
  return [
    `table ip ${MASQUERADE_TABLE}`,
    `delete table ip ${MASQUERADE_TABLE}`,
    `table ip ${MASQUERADE_TABLE} {`,
    '  chain post {',
    '    type nat hook postrouting priority 100; policy accept;',
    `    ip saddr ${planNode(spec, node).podCidr} oifname "${NODE_UPLINK}" masquerade`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** One pod: its namespace, eth0 and routes, and the node side of its veth (`ip`: see planPod). */
export function podCommands(spec: LabSpec, node: number, k: number, ip?: string): LabCommand[] {
  const pod = planPod(spec, node, k, ip);
  const nodeNs = nodeNetns(spec.id, node);
  const host = podHostLink(k);
  const mtu = String(podMtuOf(spec, node));
  const cmds: LabCommand[] = [
    { argv: ['ip', 'netns', 'add', pod.netns] },
    { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: pod.netns },
    ...ipv6NetnsSetup(spec, pod.netns),
    { argv: ['ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.netns], netns: nodeNs },
  ];
  const ip6 = pod.ip6;
  if (spec.ipv6Only) return [...cmds, ...podAddrCommands6(pod, nodeNs, host, mtu, node)];
  if (pod.style === 'calico') {
    if (ip6 !== undefined) {
      // Calico's IPv6: the host veth's MAC ee:ee:ee:ee:ee:ee gives it the link-local gateway
      // address (CALICO_GATEWAY6), which it answers ND for as its own; proxy_ndp as Felix sets it.
      cmds.push(
        { argv: ['ip', 'link', 'set', host, 'address', CALICO_HOST_MAC], netns: nodeNs },
        sysctl(nodeNs, `net.ipv6.conf.${host}.proxy_ndp`, 1),
      );
    }
    cmds.push(
      // Calico: the host veth answers ARP for anything (the pod's 169.254.1.1 gateway included);
      // proxy_delay 0 as Calico sets it, else the first ARP reply waits up to 0.8 s.
      sysctl(nodeNs, `net.ipv4.conf.${host}.proxy_arp`, 1),
      sysctl(nodeNs, `net.ipv4.neigh.${host}.proxy_delay`, 0),
      { argv: ['ip', 'link', 'set', host, 'mtu', mtu, 'up'], netns: nodeNs },
      { argv: ['ip', 'route', 'add', `${pod.ip}/32`, 'dev', host], netns: nodeNs },
      { argv: ['ip', 'addr', 'add', `${pod.ip}/32`, 'dev', 'eth0'], netns: pod.netns },
      { argv: ['ip', 'link', 'set', 'eth0', 'mtu', mtu, 'up'], netns: pod.netns },
      { argv: ['ip', 'route', 'add', CALICO_GATEWAY, 'dev', 'eth0', 'scope', 'link'], netns: pod.netns },
      { argv: ['ip', 'route', 'add', 'default', 'via', CALICO_GATEWAY, 'dev', 'eth0'], netns: pod.netns },
    );
    if (ip6 !== undefined) {
      cmds.push(
        { argv: ['ip', '-6', 'route', 'add', `${ip6}/128`, 'dev', host], netns: nodeNs },
        { argv: ['ip', '-6', 'addr', 'add', `${ip6}/128`, 'dev', 'eth0'], netns: pod.netns },
        { argv: ['ip', '-6', 'route', 'add', 'default', 'via', CALICO_GATEWAY6, 'dev', 'eth0'], netns: pod.netns },
      );
    }
  } else {
    cmds.push(
      { argv: ['ip', 'link', 'set', host, 'master', NODE_BRIDGE, 'mtu', mtu, 'up'], netns: nodeNs },
      { argv: ['ip', 'addr', 'add', `${pod.ip}/24`, 'dev', 'eth0'], netns: pod.netns },
      { argv: ['ip', 'link', 'set', 'eth0', 'mtu', mtu, 'up'], netns: pod.netns },
      { argv: ['ip', 'route', 'add', 'default', 'via', bridgeGateway(node), 'dev', 'eth0'], netns: pod.netns },
    );
    if (ip6 !== undefined) {
      cmds.push(
        { argv: ['ip', '-6', 'addr', 'add', `${ip6}/64`, 'dev', 'eth0'], netns: pod.netns },
        { argv: ['ip', '-6', 'route', 'add', 'default', 'via', bridgeGateway6(node), 'dev', 'eth0'], netns: pod.netns },
      );
    }
  }
  return cmds;
}

/** An IPv6-only pod's eth0 and routes, and its host veth: the dual-stack pod's IPv6 steps alone. */
function podAddrCommands6(pod: LabPod, nodeNs: string, host: string, mtu: string, node: number): LabCommand[] {
  const ip6 = pod.ip;
  if (pod.style === 'calico') {
    return [
      { argv: ['ip', 'link', 'set', host, 'address', CALICO_HOST_MAC], netns: nodeNs },
      sysctl(nodeNs, `net.ipv6.conf.${host}.proxy_ndp`, 1),
      { argv: ['ip', 'link', 'set', host, 'mtu', mtu, 'up'], netns: nodeNs },
      { argv: ['ip', '-6', 'route', 'add', `${ip6}/128`, 'dev', host], netns: nodeNs },
      { argv: ['ip', '-6', 'addr', 'add', `${ip6}/128`, 'dev', 'eth0'], netns: pod.netns },
      { argv: ['ip', 'link', 'set', 'eth0', 'mtu', mtu, 'up'], netns: pod.netns },
      { argv: ['ip', '-6', 'route', 'add', 'default', 'via', CALICO_GATEWAY6, 'dev', 'eth0'], netns: pod.netns },
    ];
  }
  return [
    { argv: ['ip', 'link', 'set', host, 'master', NODE_BRIDGE, 'mtu', mtu, 'up'], netns: nodeNs },
    { argv: ['ip', '-6', 'addr', 'add', `${ip6}/64`, 'dev', 'eth0'], netns: pod.netns },
    { argv: ['ip', 'link', 'set', 'eth0', 'mtu', mtu, 'up'], netns: pod.netns },
    { argv: ['ip', '-6', 'route', 'add', 'default', 'via', bridgeGateway6(node), 'dev', 'eth0'], netns: pod.netns },
  ];
}

/** The resolv.conf a pod sees (bound over /etc/resolv.conf by `ip netns exec`), as in Kubernetes. */
export function podResolvConf(spec: LabSpec): string {
  const ns = spec.service.split('.')[1] ?? 'default';
  return `nameserver ${dnsIpOf(spec)}\nsearch ${ns}.svc.cluster.local svc.cluster.local cluster.local\n`;
}

/** The pod named `name` (short 'n1p2' or namespace 'kmc<id>-n1p2'); NotFoundError lists the names. */
export function findPodIn(pods: readonly LabPod[], name: string, labId: string): LabPod {
  const pod = pods.find((p) => p.name === name || p.netns === name);
  if (pod) return pod;
  const names = pods.map((p) => p.name).join(', ');
  throw new NotFoundError(`find pod ${JSON.stringify(name)} in lab ${labId}: no such pod; the pods are ${names || '(none)'}`);
}
