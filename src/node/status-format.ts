/**
 * A node agent's `/status` (NodeStatus) as `kmcast status --node` shows it: a shape check for
 * what came over HTTP and the human table. Pure.
 */
import { StatusUnavailableError, fetchStatusJson, formatAge, formatTable } from '../runtime/status-client.js';
import { NODE_HTTP_PORT } from './api.js';
import type { PeerNodesStatus } from './api.js';
import type { NodeStatus } from './status-types.js';
import { carriedPacket } from './underlay.js';
import type { GatewayStatus } from '../gateway/status-types.js';

export const DEFAULT_NODE_STATUS_URL = `http://127.0.0.1:${NODE_HTTP_PORT}`;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True when a /status document comes from a node agent. */
export function isNodeStatus(body: unknown): boolean {
  return isObject(body) && body.mode === 'node';
}

export function parseNodeStatus(body: unknown, source: string): NodeStatus {
  const fail = (why: string): never => {
    throw new StatusUnavailableError(`read node agent status from ${source}: ${why}; is --url pointing at the node agent's --http address (default :${NODE_HTTP_PORT})?`);
  };
  if (!isObject(body) || body.mode !== 'node') return fail('the answer is not a node agent status (no "mode": "node")');
  if (typeof body.nodeIp !== 'string') fail('field "nodeIp" is missing');
  if (!Array.isArray(body.domains)) fail('field "domains" is missing or not an array');
  for (const d of body.domains as unknown[]) {
    if (!isObject(d) || typeof d.service !== 'string' || !Array.isArray(d.localMembers) || !Array.isArray(d.peers)) fail('an entry of "domains" lacks service, localMembers or peers');
  }
  return body as unknown as NodeStatus;
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'NO');
const list = (g: readonly string[]): string => (g.length ? g.join(',') : '-');

/**
 * A peer node as the status and doctor print it: an IPv4 address as is, an IPv6 one as
 * `[addr]:port` (its control socket), so the address reads whole. Pure.
 */
export function peerEndpoint(ip: string, controlPort: number): string {
  return ip.includes(':') ? `[${ip}]:${controlPort}` : ip;
}

/** The readiness of a domain's peer nodes, one line (`controlPort`: IPv6 peers as [addr]:port). Pure. */
export function peerNodesLine(p: PeerNodesStatus, controlPort = 0): string {
  const head = `${p.heard} of ${p.listed} listed heard`;
  const waiting = p.waitingFor.map((ip) => peerEndpoint(ip, controlPort)).join(', ');
  if (p.waitingFor.length === 0) return `${head}: members start with every other node known`;
  if (p.degraded)
    return `${head}: DEGRADED, ${waiting} not heard within ${(p.boundMs / 1000).toFixed(1)} s; members started without them (is kmcast node running there, with the same --key-file, and its control port reachable?)`;
  return `${head}: waiting for ${waiting} (members start at the latest in ${(p.leftMs / 1000).toFixed(1)} s)`;
}

export function formatNodeStatus(s: NodeStatus, now: Date): string {
  const out: string[] = [];
  out.push(`node agent ${s.version}  node ${peerEndpoint(s.nodeIp, s.controlPort)}  uplink ${s.uplink}  vxlan port ${s.vxlanPort}  control port ${s.controlPort}`);
  out.push(
    `ready: ${yesNo(s.ready)}  ruleset: ${s.ruleset.installed ? `installed (${s.ruleset.chains} chains)` : `NOT installed${s.ruleset.lastError ? ` (${s.ruleset.lastError})` : ''}`}` +
      `  authenticated: ${yesNo(s.authenticated)}  allow-list: ${s.allowList.installed ? `installed (${s.allowList.peers} peers)` : 'NOT installed'}`,
  );
  for (const d of s.domains) {
    out.push('');
    out.push(`domain ${d.service}  vni ${d.vni}  device ${d.device}  announced: ${d.announced ? 'yes' : 'no'}  entries: fdb ${d.entries.fdb} mdb ${d.entries.mdb}`);
    out.push(`  members listed: ${d.listed.length}  local: ${d.localMembers.length}  groups: ${list(d.groups)}${d.gateway ? `  gateway: ${d.gateway}` : ''}`);
    if (d.peerNodes) out.push(`  peer nodes: ${peerNodesLine(d.peerNodes, s.controlPort)}`);
    if (d.unannouncedGroups) out.push(`  WARNING: ${d.unannouncedGroups} joined groups are beyond what one STATE carries: not announced, peers send them nothing`);
    if (d.overlong) {
      out.push(
        `  WARNING: ${d.overlong} frames from local members were longer than the IPv6 underlay carries (VXLAN over IPv6 adds 70 bytes and is never fragmented): other nodes did not get them (an app that fragments at its device's MTU, IPV6_PMTUDISC_OMIT, past the multicast route MTU the agent sets); give the pods an MTU of at most ${s.underlayMtu !== undefined ? carriedPacket(s.nodeIp, s.underlayMtu) : 'the underlay MTU - 70'}`,
      );
    }
    if (d.spoofed) out.push(`  WARNING: ${d.spoofed} datagrams from local members had another source address than the member's own: dropped (a pod with NET_RAW speaking as another)`);
    if (d.localMembers.length) {
      const rows = d.localMembers.map((m) => [
        m.podIp,
        m.hostVeth ?? '-',
        m.netns ?? '-',
        m.programmed ? 'yes' : `no (${m.reason ?? '?'})`,
        // A pod over what an IPv6 underlay carries: its multicast route's MTU beside its own.
        `${m.mtu === undefined ? '-' : String(m.mtu)}${m.multicastMtu !== undefined ? ` (mcast ${m.multicastMtu})` : ''}`,
        String(m.oversize ?? 0),
        list(m.groups),
      ]);
      out.push(indent(formatTable(['POD', 'VETH', 'NETNS', 'PROGRAMMED', 'MTU', 'OVERSIZE', 'GROUPS'], rows)));
    }
    if (d.peers.length) {
      // An IPv6 peer node as [addr]:port (its control socket), so the address reads whole.
      const rows = d.peers.map((p) => [peerEndpoint(p.ip, s.controlPort), p.state, formatAge(p.lastSeen, now), list(p.groups)]);
      out.push(indent(formatTable(['PEER NODE', 'STATE', 'LAST SEEN', 'GROUPS'], rows)));
    }
  }
  if (s.gateway) out.push('', ...formatGateway(s.gateway));
  const control = Object.entries(s.drops.control).filter(([, v]) => v > 0);
  out.push('');
  out.push(`control drops: ${control.length ? control.map(([k, v]) => `${k} ${v}`).join('  ') : 'none'}`);
  return `${out.join('\n')}\n`;
}

/** The gateway interface's addresses: IPv4 (none on an IPv6-only node), then IPv6. Pure. */
export function gatewayAddresses(g: Pick<GatewayStatus, 'address' | 'address6'>): string[] {
  return [g.address, g.address6 ?? ''].filter((a) => a !== '');
}

function formatGateway(g: GatewayStatus): string[] {
  const role = g.active ? 'ACTIVE' : g.role === 'settling' ? 'settling' : `standby (active: ${g.activeGateway ?? '?'})`;
  const out = [
    `gateway ${role}  domain ${g.service}  interface ${g.interface} ${gatewayAddresses(g).join(' ')}  snat: ${g.snat ? 'on' : 'off'}  rate: ${g.rate ? `${g.rate}/s per group` : 'no limit'}, ${g.rateTotal ? `${g.rateTotal}/s in total` : 'no total limit'}  min ttl: ${g.minTtl}`,
    `  groups: ${g.groups.map((x) => `${x.prefix}=${x.direction}`).join(' ')}`,
    `  joined: ${list(g.joined)}${g.joinFailures.length ? `  join failures: ${g.joinFailures.map((f) => `${f.group} (${f.error})`).join(', ')}` : ''}${g.unjoined.count ? `  NOT joined (over ${g.unjoined.max}): ${g.unjoined.count} (${g.unjoined.groups.join(',')}${g.unjoined.count > g.unjoined.groups.length ? ',...' : ''})` : ''}`,
    `  dropped: ${(['in', 'out'] as const)
      .map(
        (d) =>
          `${d} ${Object.entries(g.drops[d])
            .map(([k, v]) => `${k} ${v}`)
            .join(' ')}`,
      )
      .join('  ')}`,
    `  other gateways: ${g.gateways.length ? g.gateways.map((x) => `${x.ip} ${x.state}${x.address ? ` (${x.address})` : ''}`).join(', ') : 'none'}  table: ${g.table.installed ? 'installed' : `NOT installed${g.table.lastError ? ` (${g.table.lastError})` : ''}`}`,
  ];
  if (g.traffic.length) {
    const rows = g.traffic.map((t) => [t.group, t.direction, String(t.datagrams), String(t.bytes), String(t.dropped.rate ?? 0), String(t.dropped.ttl ?? 0), String(t.dropped.loop ?? 0)]);
    out.push(indent(formatTable(['GROUP', 'DIR', 'DATAGRAMS', 'BYTES', 'DROP RATE', 'DROP TTL', 'DROP LOOP'], rows)));
  }
  return out;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/** GET a node agent's `/status`; failures become a StatusUnavailableError naming the URL. */
export async function fetchNodeStatus(url: string, timeoutMs = 3000): Promise<NodeStatus> {
  const { body, endpoint } = await fetchStatusJson(url, {
    what: 'node agent status',
    hint: 'is kmcast node running? its --http (or --status-http) address?',
    forbiddenHint: "run on the node (or in the agent's pod), or give --url the agent's --status-http address",
    timeoutMs,
  });
  return parseNodeStatus(body, endpoint);
}
