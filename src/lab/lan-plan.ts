/**
 * Pure plan of the lab's outside LAN: a network that is not the cluster's, with hosts that are not
 * pods, attached to one or more lab nodes (where a multicast gateway runs). Like plan.ts nothing
 * here touches the kernel; lan.ts runs these argv lists through a Runner.
 *
 * Plan (LAN host j, lab node i, both 1-based):
 *   switch `kmc<id>-lan`, bridge `kmclanbr` 192.168.250.254/24 (IGMP snooping and querier)
 *   hosts  `kmc<id>-h<j>`, eth0 192.168.250.<10+j>/24, route 224.0.0.0/4 dev eth0; port `kmch<j>`
 *   node i `kmclan` 192.168.250.<i>/24 in the node namespace; port `kmcl<i>`
 *
 * The switch forwards a routable group only to ports that sent an IGMP report for it (snooping,
 * with the bridge as the querier, so unregistered groups are not flooded either) and floods
 * link-local 224.0.0.x and broadcast to every port. Node ports are never multicast router ports
 * (`mcast_router 0`), so a node receives a routable group only after it joined it, even once it
 * sends IGMP queries itself. Nothing routes the LAN: the hosts have no default route and the
 * router has no route to 192.168.250.0/24, so the underlay never carries LAN traffic.
 *
 * Dual stack (a lab with spec.ipv6): the LAN gets fd00:250::/64 with the same last digits (switch
 * fd00:250::fe, host j fd00:250::<10+j>, node i fd00:250::<i>), DAD off in its namespaces as in
 * the rest of the lab, and the bridge snoops MLD as it snoops IGMP (it is the MLD querier too),
 * so a node port gets a routable IPv6 group only after an MLD report from the node.
 *
 * IPv6 only (a lab with spec.ipv6Only): the same LAN without IPv4: no 192.168.250.0/24 address
 * and no 224.0.0.0/4 route; a host's and a node's `ip` is then its IPv6 address (as a node's
 * underlay address is in such a lab), the LAN's `cidr` and `switchIp` the IPv6 ones.
 */
import { ConfigError } from '../errors.js';
import { canonicalGroup, familyOf } from '../net/groups.js';
import type { Family } from '../net/groups.js';
import type { LabCommand } from './plan.js';
import { NETNS_PREFIX, nodeNetns } from './plan.js';
import type { LabLan, LabLanHost, LabLanNode, LabSpec } from './types.js';

export const LAN_BRIDGE = 'kmclanbr';
/** The node-side end of a node's LAN veth (in the node namespace). */
export const NODE_LAN = 'kmclan';
export const LAN_CIDR = '192.168.250.0/24';
export const LAN_PREFIX_LEN = 24;
/** The switch's own (management and IGMP querier) address. */
export const LAN_SWITCH_IP = '192.168.250.254';
export const LAN_CIDR6 = 'fd00:250::/64';
export const LAN_SWITCH_IP6 = 'fd00:250::fe';
export const DEFAULT_LAN_HOSTS = 2;
export const MAX_LAN_HOSTS = 50;
/** Nodes take .1 to .10, hosts .11 to .60: only the first 10 lab nodes can join the LAN. */
export const MAX_LAN_NODE = 10;
/** IGMP general queries every 2 s (the kernel counts in 1/100 s): joins are learnt quickly. */
export const LAN_QUERY_INTERVAL_CS = 200;
export const LAN_STARTUP_QUERY_INTERVAL_CS = 50;
/** How long a membership lasts without a report: 2 queries + the response time, as RFC 3376 does. */
export const LAN_MEMBERSHIP_INTERVAL_CS = 2 * LAN_QUERY_INTERVAL_CS + 100;
export const LAN_QUERY_RESPONSE_INTERVAL_CS = 50;
/**
 * Once it is made querier the bridge waits one query response interval before it trusts its
 * snooping: until then it floods every group, joined or not, to every port with mcast_flood on
 * (the default interval is 10 s, hence the short one, set before the querier is switched on).
 * addLan returns only after that (plus a margin), so the LAN behaves from the first datagram.
 */
export const LAN_SNOOPING_SETTLE_MS = LAN_QUERY_RESPONSE_INTERVAL_CS * 10 + 250;

export const lanNetns = (id: string): string => `${NETNS_PREFIX}${id}-lan`;
export const lanHostName = (j: number): string => `h${j}`;
export const lanHostNetns = (id: string, j: number): string => `${NETNS_PREFIX}${id}-${lanHostName(j)}`;
/** Switch-side end of host j's veth; the host side is `eth0`. */
export const lanHostPort = (j: number): string => `kmch${j}`;
/** Switch-side end of node i's veth; the node side is `kmclan`. */
export const lanNodePort = (node: number): string => `kmcl${node}`;
export const lanHostIp = (j: number): string => `192.168.250.${10 + j}`;
export const lanNodeIp = (node: number): string => `192.168.250.${node}`;
export const lanHostIp6 = (j: number): string => `fd00:250::${10 + j}`;
export const lanNodeIp6 = (node: number): string => `fd00:250::${node}`;

/** The LAN's families: IPv4 only (false), dual stack (true) or IPv6 only ('only'). */
export type LanIpv6 = boolean | 'only';

/** The LAN's families in a lab of `spec`: those of the lab. */
export function lanIpv6Of(spec: Pick<LabSpec, 'ipv6' | 'ipv6Only'>): LanIpv6 {
  return spec.ipv6Only ? 'only' : spec.ipv6 === true;
}

/** DAD off in a dual-stack LAN namespace before its links exist (plan.ts says why). */
function noDad(netns: string): LabCommand[] {
  return ['all', 'default'].map((c) => ({ argv: ['sysctl', '-q', '-w', `net.ipv6.conf.${c}.accept_dad=0`], netns }));
}

/** `--lan` value: a comma list of node indexes, e.g. '1' or '1,2'; each within the lab's nodes. */
export function parseLanNodes(value: string, nodeCount: number): number[] {
  const parts = value.split(',').map((s) => s.trim());
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p)) {
      throw new ConfigError(`invalid --lan ${JSON.stringify(value)}: use a comma list of node indexes, e.g. --lan 1 or --lan 1,2`, { fields: { field: 'lan' } });
    }
    checkLanNode(Number(p), nodeCount, '--lan');
    if (!out.includes(Number(p))) out.push(Number(p));
  }
  return out;
}

export function checkLanNode(node: number, nodeCount: number, what = 'attach node'): number {
  const max = Math.min(nodeCount, MAX_LAN_NODE);
  if (!Number.isInteger(node) || node < 1 || node > max) {
    const why = nodeCount > MAX_LAN_NODE ? ` (only nodes 1 to ${MAX_LAN_NODE} have a LAN address)` : '';
    throw new ConfigError(`invalid ${what} ${String(node)}: the LAN attaches to nodes 1 to ${max}${why}`, { fields: { field: 'lan' } });
  }
  return node;
}

export function checkLanHosts(hosts: number): number {
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > MAX_LAN_HOSTS) {
    throw new ConfigError(`invalid --lan-hosts ${String(hosts)}: a LAN has 1 to ${MAX_LAN_HOSTS} hosts`, { fields: { field: 'lan-hosts' } });
  }
  return hosts;
}

export function planLanHost(id: string, j: number, ipv6: LanIpv6 = false): LabLanHost {
  return { name: lanHostName(j), netns: lanHostNetns(id, j), ip: ipv6 === 'only' ? lanHostIp6(j) : lanHostIp(j), ...(ipv6 ? { ip6: lanHostIp6(j) } : {}), ifname: 'eth0' };
}

export function planLanNode(id: string, node: number, ipv6: LanIpv6 = false): LabLanNode {
  return { node, netns: nodeNetns(id, node), ifname: NODE_LAN, ip: ipv6 === 'only' ? lanNodeIp6(node) : lanNodeIp(node), ...(ipv6 ? { ip6: lanNodeIp6(node) } : {}), port: lanNodePort(node) };
}

/** The LAN as planned (validated against the lab's node count), before anything exists. */
export function planLan(spec: LabSpec, opts: { nodes: readonly number[]; hosts?: number }): LabLan {
  const hosts = checkLanHosts(opts.hosts ?? DEFAULT_LAN_HOSTS);
  for (const n of opts.nodes) checkLanNode(n, spec.nodes.length);
  const v6 = lanIpv6Of(spec);
  return {
    netns: lanNetns(spec.id),
    bridge: LAN_BRIDGE,
    cidr: v6 === 'only' ? LAN_CIDR6 : LAN_CIDR,
    switchIp: v6 === 'only' ? LAN_SWITCH_IP6 : LAN_SWITCH_IP,
    ...(v6 ? { cidr6: LAN_CIDR6, switchIp6: LAN_SWITCH_IP6 } : {}),
    hosts: Array.from({ length: hosts }, (_, j) => planLanHost(spec.id, j + 1, v6)),
    nodes: [...new Set(opts.nodes)].map((n) => planLanNode(spec.id, n, v6)),
  };
}

/** The switch namespace and its snooping, querying bridge (`ipv6`: dual stack, or 'only'). */
export function lanSwitchCommands(id: string, mtu: number, ipv6: LanIpv6 = false): LabCommand[] {
  const s = lanNetns(id);
  return [
    { argv: ['ip', 'netns', 'add', s] },
    ...(ipv6 ? noDad(s) : []),
    { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: s },
    {
      argv: [
        'ip', 'link', 'add', LAN_BRIDGE, 'type', 'bridge',
        'mcast_snooping', '1',
        'mcast_query_use_ifaddr', '1',
        'mcast_igmp_version', '2',
        'mcast_query_interval', String(LAN_QUERY_INTERVAL_CS),
        'mcast_query_response_interval', String(LAN_QUERY_RESPONSE_INTERVAL_CS),
        'mcast_startup_query_interval', String(LAN_STARTUP_QUERY_INTERVAL_CS),
        'mcast_membership_interval', String(LAN_MEMBERSHIP_INTERVAL_CS),
      ],
      netns: s,
    },
    ...(ipv6 === 'only' ? [] : [{ argv: ['ip', 'addr', 'add', `${LAN_SWITCH_IP}/${LAN_PREFIX_LEN}`, 'dev', LAN_BRIDGE], netns: s }]),
    ...(ipv6 ? [{ argv: ['ip', '-6', 'addr', 'add', `${LAN_SWITCH_IP6}/64`, 'dev', LAN_BRIDGE], netns: s }] : []),
    { argv: ['ip', 'link', 'set', LAN_BRIDGE, 'mtu', String(mtu), 'up'], netns: s },
    // Its own step: the kernel applies mcast_querier before the intervals of the same request, and
    // would wait the default 10 s response interval before trusting its snooping.
    { argv: ['ip', 'link', 'set', LAN_BRIDGE, 'type', 'bridge', 'mcast_querier', '1'], netns: s },
  ];
}

/** LAN host j: its namespace, eth0 on the switch, and a multicast route (no default route). */
export function lanHostCommands(id: string, j: number, mtu: number, ipv6: LanIpv6 = false): LabCommand[] {
  const s = lanNetns(id);
  const h = planLanHost(id, j, ipv6);
  const port = lanHostPort(j);
  return [
    { argv: ['ip', 'netns', 'add', h.netns] },
    ...(ipv6 ? noDad(h.netns) : []),
    { argv: ['ip', 'link', 'set', 'lo', 'up'], netns: h.netns },
    { argv: ['ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.netns], netns: s },
    { argv: ['ip', 'link', 'set', port, 'master', LAN_BRIDGE, 'mtu', String(mtu), 'up'], netns: s },
    ...(ipv6 === 'only' ? [] : [{ argv: ['ip', 'addr', 'add', `${h.ip}/${LAN_PREFIX_LEN}`, 'dev', 'eth0'], netns: h.netns }]),
    ...(h.ip6 ? [{ argv: ['ip', '-6', 'addr', 'add', `${h.ip6}/64`, 'dev', 'eth0'], netns: h.netns }] : []),
    { argv: ['ip', 'link', 'set', 'eth0', 'mtu', String(mtu), 'up'], netns: h.netns },
    // IPv6 multicast needs no route: every IPv6 interface has ff00::/8 in the local table.
    ...(ipv6 === 'only' ? [] : [{ argv: ['ip', 'route', 'add', '224.0.0.0/4', 'dev', 'eth0'], netns: h.netns }]),
  ];
}

/**
 * Node i on the LAN: `kmclan` with the node's LAN address (the node's default route stays the
 * underlay's). Its switch port never becomes a multicast router port, so routable groups reach
 * it only after its own IGMP report; mcast_flood stays on because the bridge applies it to
 * link-local 224.0.0.x too (off would cut mDNS and the like), and unregistered routable groups are
 * not flooded anyway while the bridge is the querier.
 */
export function lanNodeCommands(id: string, node: number, mtu: number, ipv6: LanIpv6 = false): LabCommand[] {
  const s = lanNetns(id);
  const n = planLanNode(id, node, ipv6);
  return [
    { argv: ['ip', 'link', 'add', n.port, 'type', 'veth', 'peer', 'name', NODE_LAN, 'netns', n.netns], netns: s },
    { argv: ['ip', 'link', 'set', n.port, 'master', LAN_BRIDGE, 'mtu', String(mtu), 'up'], netns: s },
    { argv: ['ip', 'link', 'set', n.port, 'type', 'bridge_slave', 'mcast_router', '0', 'mcast_flood', 'on', 'bcast_flood', 'on'], netns: s },
    ...(ipv6 === 'only' ? [] : [{ argv: ['ip', 'addr', 'add', `${n.ip}/${LAN_PREFIX_LEN}`, 'dev', NODE_LAN], netns: n.netns }]),
    ...(n.ip6 ? [{ argv: ['ip', '-6', 'addr', 'add', `${n.ip6}/64`, 'dev', NODE_LAN], netns: n.netns }] : []),
    { argv: ['ip', 'link', 'set', NODE_LAN, 'mtu', String(mtu), 'up'], netns: n.netns },
  ];
}

/** The LAN's ports: its hosts and the attached nodes (after lanSwitchCommands). */
export function lanPortCommands(spec: LabSpec, lan: LabLan): LabCommand[] {
  return [
    ...lan.hosts.map((_, j) => lanHostCommands(spec.id, j + 1, spec.mtu, lanIpv6Of(spec))).flat(),
    ...lan.nodes.map((n) => lanNodeCommands(spec.id, n.node, spec.mtu, lanIpv6Of(spec))).flat(),
  ];
}

/** The whole LAN's build, switch first. */
export function lanCommands(spec: LabSpec, lan: LabLan): LabCommand[] {
  return [...lanSwitchCommands(spec.id, spec.mtu, lanIpv6Of(spec)), ...lanPortCommands(spec, lan)];
}

/** One entry of the switch's snooping table: `port` joined group `group` (canonical text). */
export interface LanMembership {
  readonly port: string;
  readonly group: string;
}

/** Group memberships of `family` (IPv4 by default) from `bridge -j mdb show`; the other family and malformed entries skipped. Pure. */
export function parseLanMdb(json: string, family: Family = 4): LanMembership[] {
  const out: LanMembership[] = [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(json === '' ? '[]' : json);
  } catch {
    return out;
  }
  for (const dev of Array.isArray(parsed) ? (parsed as Array<{ mdb?: unknown }>) : []) {
    for (const e of Array.isArray(dev.mdb) ? (dev.mdb as Array<{ port?: unknown; grp?: unknown }>) : []) {
      const group = typeof e.grp === 'string' ? canonicalGroup(e.grp) : undefined;
      if (typeof e.port === 'string' && group !== undefined && familyOf(group) === family) out.push({ port: e.port, group });
    }
  }
  return out;
}
