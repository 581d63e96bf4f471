/**
 * The agent's `/status` document as seen by its readers (`kmcast status`, `kmcast doctor`):
 * a shape check for what came over HTTP, the human table, and the small HTTP client.
 * Everything but `fetchAgentStatus` is pure and tested on fixtures.
 */
import { StatusUnavailableError, fetchStatusJson } from '../runtime/status-client.js';
export { StatusUnavailableError, formatAge, formatTable, statusEndpoint } from '../runtime/status-client.js';
import { formatAge, formatTable } from '../runtime/status-client.js';
import type { AgentStatus, PeerStatus } from './status-types.js';

/** Default address of the agent's HTTP server as seen from inside the pod (`--http :9470`). */
export const DEFAULT_STATUS_URL = 'http://127.0.0.1:9470';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks that `body` is a `/status` document before anything indexes into it: a wrong `--url`
 * (another service on the port) must give a clear message, not "cannot read properties of
 * undefined". Only the fields the readers rely on are checked, so the agent may add fields.
 */
export function parseAgentStatus(body: unknown, source: string): AgentStatus {
  const fail = (why: string): never => {
    throw new StatusUnavailableError(`read agent status from ${source}: ${why}; is --url pointing at the agent's --http address?`);
  };
  if (!isObject(body)) return fail('the answer is not a JSON object');
  for (const key of ['podIp', 'device', 'addressing', 'replication'] as const) {
    if (typeof body[key] !== 'string') fail(`field "${key}" is missing or not a string`);
  }
  for (const key of ['vni', 'vxlanPort', 'controlPort'] as const) {
    if (typeof body[key] !== 'number') fail(`field "${key}" is missing or not a number`);
  }
  if (!Array.isArray(body.peers)) fail('field "peers" is missing or not an array');
  for (const p of body.peers as unknown[]) {
    if (!isObject(p) || typeof p.ip !== 'string' || typeof p.state !== 'string') {
      fail('an entry of "peers" has no "ip" or "state"');
    }
  }
  if (!Array.isArray(body.localGroups)) fail('field "localGroups" is missing or not an array');
  if (!isObject(body.entries)) fail('field "entries" is missing');
  if (!isObject(body.drops)) fail('field "drops" is missing');
  return body as unknown as AgentStatus;
}

function yesNo(v: boolean): string {
  return v ? 'yes' : 'no';
}

function groupList(groups: readonly string[]): string {
  return groups.length === 0 ? '-' : groups.join(',');
}

// Problems first: a peer that is not alive is what the reader is looking for.
const STATE_ORDER: Record<string, number> = { expired: 0, left: 1, pending: 2, alive: 3 };

function comparePeers(a: PeerStatus, b: PeerStatus): number {
  const s = (STATE_ORDER[a.state] ?? -1) - (STATE_ORDER[b.state] ?? -1);
  if (s !== 0) return s;
  return ipKey(a.ip) < ipKey(b.ip) ? -1 : ipKey(a.ip) > ipKey(b.ip) ? 1 : 0;
}

/** Sort key that orders dotted quads numerically (10.0.0.9 before 10.0.0.10). */
function ipKey(ip: string): string {
  const parts = ip.split('.');
  if (parts.length !== 4) return ip;
  return parts.map((p) => p.padStart(3, '0')).join('.');
}

/** The human view of `kmcast status`. */
export function formatStatus(s: AgentStatus, now: Date): string {
  const out: string[] = [];
  const alive = s.peers.filter((p) => p.state === 'alive').length;
  out.push(
    `agent ${s.version ?? '?'}  pod ${s.podIp}${s.podIp6 && s.podIp6 !== s.podIp ? ` ${s.podIp6}` : ''}  underlay ${s.underlay ?? '?'}  device ${s.device}` +
      `  vni ${s.vni}  vxlan port ${s.vxlanPort}  control port ${s.controlPort}`,
  );
  out.push(
    `ready: ${yesNo(s.ready)}  replication: ${s.replication}  addressing: ${s.addressing}` +
      `  unregistered: ${s.unregistered ?? '?'}  authenticated: ${yesNo(s.authenticated)}` +
      `  allow-list: ${s.allowList ? (s.allowList.installed ? `installed (${s.allowList.peers} peers)` : 'NOT installed') : '?'}`,
  );
  if (!s.authenticated) out.push('warning: no --key-file: control messages are not authenticated');
  if (s.allowList && !s.allowList.installed) out.push('warning: no allow-list: vx0 accepts VXLAN from anyone who reaches its port');
  out.push('');
  out.push(`peers: ${s.peers.length} (${alive} alive)`);
  if (s.peers.length > 0) {
    const rows = [...s.peers].sort(comparePeers).map((p) => [p.ip, p.state, formatAge(p.lastSeen, now), (p.sources ?? []).join(','), groupList(p.groups ?? [])]);
    out.push(indent(formatTable(['PEER', 'STATE', 'LAST SEEN', 'SOURCE', 'GROUPS'], rows)));
  }
  out.push('');
  out.push(`local groups: ${groupList(s.localGroups)}`);
  // Apps that name eth0 (absent from older agents).
  if (s.groupsByInterface) {
    out.push(
      `  by interface: ${Object.entries(s.groupsByInterface)
        .map(([dev, g]) => `${dev} ${groupList(g)}`)
        .join('  ')}`,
    );
  }
  if (s.capture) {
    const c = s.capture;
    out.push(
      c.path === 'off'
        ? `capture: off (multicast and broadcast sent out of ${c.underlay} stay there)`
        : `capture: ${c.path} on ${c.underlay} -> ${s.device}, ${c.installed ? `installed, ${c.forwarded} frames moved${c.forwarded6 ? ` (${c.forwarded6} IPv6)` : ''}${c.icmp6Dropped ? `, ${c.icmp6Dropped} ICMPv6 of ${s.device} kept off the overlay` : ''}${c.icmp6Refused ? `, ${c.icmp6Refused} ICMPv6 from the overlay refused` : ''}` : 'NOT installed'}`,
    );
  }
  const e = s.entries;
  out.push(`entries: fdb ${e.fdb}  mdb ${e.mdb}  routes ${e.routes}`);
  const control = Object.entries(s.drops.control ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const controlText = control.length === 0 ? 'none' : control.map(([k, v]) => `${k} ${v}`).join('  ');
  out.push(`drops: unregistered groups ${s.drops.unregistered}  control: ${controlText}`);
  if (s.drops.underlayTooLong) {
    out.push(
      `WARNING: ${s.drops.underlayTooLong} VXLAN packets were longer than ${s.underlay || 'the pod interface'} and lost (VXLAN over IPv6 is never fragmented): an app fragments its datagrams at ${s.underlay || 'eth0'}'s own MTU (IPV6_PMTUDISC_OMIT), ignoring the ${s.underlay || 'eth0'} multicast route at ${s.device}'s MTU that the sidecar keeps; let it use the route's MTU, send through ${s.device}, or keep its datagrams at most ${s.device}'s MTU`,
    );
  }
  return `${out.join('\n')}\n`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/**
 * GET the agent's `/status`. Network failures, timeouts and non-200 answers become a
 * StatusUnavailableError naming the URL and the likely cause, never a raw fetch TypeError.
 */
export async function fetchAgentStatus(url: string, timeoutMs = 3000): Promise<AgentStatus> {
  const { body, endpoint } = await fetchStatusJson(url, { what: 'agent status', hint: 'is the agent running? its --http address?', timeoutMs });
  return parseAgentStatus(body, endpoint);
}
