/**
 * The gateway's inbound path built by hand, with no agent: on the gateway node, a netdev table
 * whose ingress chain on the LAN interface has the rules of kmcast's `lan-in` (IPv4 only, the
 * inbound group set, UDP only, the loop checks against the gateway's own MAC and address and the
 * domain's pods, the TTL floor and the rate meters when configured, the per-group pass counter,
 * then `dup to` each local member's host veth and `fwd to` the domain's VXLAN device), its drop
 * chains, and a socket joined to the group on the LAN interface (IP_ADD_MEMBERSHIP on its address,
 * as the gateway's joiner does) so that the LAN switch sends the group there. The domain's own
 * devices, entries and node table come from bench/lib/node-reference.ts.
 *
 * The script is written here, not taken from src/gateway/nft.ts: the point of the reference is a
 * path built independently of kmcast's code being right (a rule the renderer should not write
 * would otherwise be in both paths and cost nothing in the ratio). The scenario checks instead
 * that the agent's installed chain lists the same rules (`lanInRules`) and says so in its notes.
 * Only the inbound half is written: the outbound sets and counters kmcast declares in the same
 * table are on no inbound datagram's path.
 */
import type { LabLanNode, LabNode } from '../../src/lab/types.js';
import { IpClient } from '../../src/kernel/ip.js';
import { NftClient } from '../../src/kernel/nft.js';
import { runner, spawnIn, stop, waitJoined } from './net.js';
import type { Proc } from './net.js';

/** Not kmcast's `kmcast-gw`: `nft list ruleset` on a node shows whose table it is. */
export const REFERENCE_GW_TABLE = 'kmcbench-gw';

export interface GatewayReferenceSpec {
  readonly node: LabNode;
  readonly lan: LabLanNode;
  /** The inbound range, e.g. 239.255.72.0/24 (what --gateway-group GROUP/LEN=in sets). */
  readonly range: string;
  /** The group joined on the LAN interface. */
  readonly group: string;
  /** The domain's VXLAN device on the gateway node. */
  readonly device: string;
  /** Host veths of the member pods on the gateway node. */
  readonly localMembers: readonly string[];
  /** IPv4 addresses of every member pod of the domain. */
  readonly pods: readonly string[];
  /** --gateway-rate, --gateway-rate-total (datagrams per second, 0 = none) and --gateway-min-ttl. */
  readonly rate: number;
  readonly rateTotal: number;
  readonly minTtl: number;
}

export interface GatewayReference {
  /** The LAN ingress chain's lines as nft lists them (see lanInRules). */
  readonly rules: readonly string[];
  remove(): Promise<void>;
}

const DYNAMIC_SET = 'size 65536; flags dynamic; counter;';

/** The hand-written inbound table. */
export function referenceGatewayScript(s: GatewayReferenceSpec, lanIp: string, lanMac: string): string {
  const t = REFERENCE_GW_TABLE;
  const set = (name: string, type: string, elements: readonly string[], flags = ''): string =>
    `  set ${name} { type ${type};${flags}${elements.length ? ` elements = { ${[...new Set(elements)].join(', ')} };` : ''} }`;
  const burst = (rate: number): number => Math.max(10, Math.ceil(rate / 10));
  const filters: string[] = [];
  if (s.minTtl > 1) filters.push(`ip ttl < ${s.minTtl} goto in-drop-ttl`);
  if (s.rate > 0) {
    filters.push(`update @in-meter { ip daddr limit rate over ${s.rate}/second burst ${burst(s.rate)} packets } goto in-drop-rate`);
    filters.push('ip daddr != @in-meter goto in-drop-full');
  }
  if (s.rateTotal > 0) filters.push('limit name "in-total" goto in-drop-total');
  const drop = (reason: string, perGroup: boolean): string[] => [
    `  chain in-drop-${reason} {`,
    ...(perGroup ? [`    update @in-${reason} { ip daddr }`] : []),
    `    counter name "in-drop-${reason}" drop`,
    '  }',
  ];
  return [
    `table netdev ${t}`,
    `delete table netdev ${t}`,
    `table netdev ${t} {`,
    set('in-groups', 'ipv4_addr', [s.range], ' flags interval;'),
    set('pods', 'ipv4_addr', s.pods),
    set('gw-addrs', 'ipv4_addr', [lanIp]),
    set('gw-macs', 'ether_addr', [lanMac.toLowerCase()]),
    ...['pass', 'rate', 'ttl', 'loop'].map((k) => `  set in-${k} { type ipv4_addr; ${DYNAMIC_SET} }`),
    '  set in-meter { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 60s; }',
    ...['rate', 'ttl', 'loop', 'total', 'full'].map((k) => `  counter in-drop-${k} { }`),
    ...(s.rateTotal > 0 ? [`  limit in-total { rate over ${s.rateTotal}/second burst ${burst(s.rateTotal)} packets }`] : []),
    '  chain lan-in {',
    `    type filter hook ingress device "${s.lan.ifname}" priority -500; policy accept;`,
    '    meta protocol != ip return',
    '    ip daddr != @in-groups return',
    '    meta l4proto != udp return',
    '    ether saddr @gw-macs goto in-drop-loop',
    '    ip saddr @gw-addrs goto in-drop-loop',
    '    ip saddr @pods goto in-drop-loop',
    ...filters.map((f) => `    ${f}`),
    '    update @in-pass { ip daddr }',
    `    ${[...s.localMembers.map((m) => `dup to "${m}"`), `fwd to "${s.device}"`].join(' ')}`,
    '  }',
    ...drop('rate', true),
    ...drop('ttl', true),
    ...drop('loop', true),
    ...drop('total', false),
    ...drop('full', false),
    '}',
    '',
  ].join('\n');
}

/** One UDP socket joined to the group on the interface's address; it never reads (the chain takes the group first). */
const JOIN_SCRIPT = "const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true }); s.bind(0, () => s.addMembership(process.argv[1], process.argv[2]));";

/** The lines of chain `lan-in` of `table` as nft lists them, trimmed: the hook line, then each rule. */
export async function lanInRules(netns: string, table: string): Promise<string[]> {
  const listing = await new NftClient(runner, netns).listChain('netdev', table, 'lan-in');
  const lines = listing.split('\n').map((l) => l.trim());
  const start = lines.indexOf('chain lan-in {');
  if (start < 0) throw new Error(`${netns}: no chain lan-in in table netdev ${table}`);
  const end = lines.indexOf('}', start);
  return lines.slice(start + 1, end < 0 ? undefined : end).filter((l) => l !== '');
}

/** Installs the inbound table and the join; `remove` undoes both. */
export async function buildGatewayReference(s: GatewayReferenceSpec): Promise<GatewayReference> {
  const netns = s.node.netns;
  const ip = new IpClient(runner, netns);
  const lanIp = (await ip.addrs(s.lan.ifname))[0]?.split('/')[0];
  const lanMac = (await ip.link(s.lan.ifname))?.mac;
  if (!lanIp || !lanMac) throw new Error(`${netns}: ${s.lan.ifname} has no IPv4 address or MAC`);
  const nft = new NftClient(runner, netns);
  let joiner: Proc | undefined;
  const remove = async (): Promise<void> => {
    if (joiner) await stop(joiner, 'SIGTERM', 1000);
    await nft.deleteTable('netdev', REFERENCE_GW_TABLE);
  };
  try {
    await nft.apply(referenceGatewayScript(s, lanIp, lanMac));
    const rules = await lanInRules(netns, REFERENCE_GW_TABLE);
    joiner = spawnIn(netns, [process.execPath, '-e', JOIN_SCRIPT, s.group, lanIp]);
    await waitJoined(netns, s.group);
    return { rules, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
