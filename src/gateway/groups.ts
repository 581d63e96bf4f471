/**
 * What a gateway lets cross: `--gateway-group GROUP[/LEN]=in|out|both` entries, parsed and checked.
 * Pure. Nothing crosses unless an entry lists it, so the parser is strict: every mistake is a
 * ConfigError that names the flag and the entry.
 *
 * - `in` (outside -> pods) may be a range: the gateway joins, on its interface, the groups of the
 *   range that member pods joined (a range is a filter on demand, never a join of 2^n groups).
 * - `out` and `both` name single groups: a sender's node replicates per group (the VXLAN MDB), so
 *   the gateway can only ask for groups it can name.
 * - Link-local groups (224.0.0.0/24) are listed one by one, and the IGMP machinery (224.0.0.0,
 *   .1 all-hosts, .2 all-routers, .22 IGMPv3 reports) never crosses.
 */
import { ConfigError } from '../errors.js';
import { formatIpv4, isLinkLocalMulticast, maskOf, parseIpv4 } from '../net/ipv4.js';

export type GatewayDirection = 'in' | 'out' | 'both';

export interface GatewayGroup {
  /** `a.b.c.d/len`, host bits clear. */
  readonly prefix: string;
  /** The first address of the range (the group itself when len is 32). */
  readonly base: string;
  readonly len: number;
  readonly direction: GatewayDirection;
}

export const MAX_GATEWAY_GROUPS = 256;
const FLAG = '--gateway-group';
const NEVER = new Set(['224.0.0.0', '224.0.0.1', '224.0.0.2', '224.0.0.22']);
const LINK_LOCAL = { network: parseIpv4('224.0.0.0')!, prefix: 24 };

function fail(message: string): never {
  throw new ConfigError(`${FLAG} (or KMCAST_GATEWAY_GROUP): ${message}`, { fields: { flag: FLAG } });
}

const first = (g: { network: number }): number => g.network;
const last = (g: { network: number; prefix: number }): number => (g.network | (~maskOf(g.prefix) >>> 0)) >>> 0;

function overlaps(a: { network: number; prefix: number }, b: { network: number; prefix: number }): boolean {
  return first(a) <= last(b) && first(b) <= last(a);
}

/** `values` (each may be a comma list) -> entries in the order given. Throws ConfigError. */
export function parseGatewayGroups(values: readonly string[]): GatewayGroup[] {
  const items = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  if (items.length > MAX_GATEWAY_GROUPS) fail(`${items.length} entries; at most ${MAX_GATEWAY_GROUPS} (use ranges for inbound groups)`);
  const out: { entry: GatewayGroup; range: { network: number; prefix: number } }[] = [];
  for (const item of items) {
    const m = /^([^=/\s]+)(?:\/(\d{1,2}))?=(\w*)$/.exec(item);
    if (!m) fail(`${JSON.stringify(item)} is not GROUP[/LEN]=in|out|both (e.g. 239.10.0.0/16=in or 224.0.0.251=both)`);
    const [, addr, lenText, dir] = m;
    const ip = parseIpv4(addr!);
    if (ip === undefined) fail(`${JSON.stringify(item)}: ${JSON.stringify(addr)} is not an IPv4 address`);
    const len = lenText === undefined ? 32 : Number(lenText);
    if (len < 4 || len > 32) fail(`${JSON.stringify(item)}: the prefix length must be 4 to 32 (a range inside 224.0.0.0/4)`);
    if (dir !== 'in' && dir !== 'out' && dir !== 'both') fail(`${JSON.stringify(item)}: the direction must be in, out or both, not ${JSON.stringify(dir)}`);
    const network = (ip & maskOf(len)) >>> 0;
    if (network !== ip) fail(`${JSON.stringify(item)}: host bits are set; did you mean ${formatIpv4(network)}/${len}?`);
    if ((ip & 0xf0000000) >>> 0 !== 0xe0000000) fail(`${JSON.stringify(item)}: ${addr} is not a multicast group (224.0.0.0/4)`);
    const range = { network, prefix: len };
    if (len < 32 && overlaps(range, LINK_LOCAL)) {
      fail(`${JSON.stringify(item)}: a range may not cover 224.0.0.0/24; list link-local groups one by one (e.g. 224.0.0.251=both for mDNS)`);
    }
    if (len === 32 && NEVER.has(addr!)) fail(`${JSON.stringify(item)}: ${addr} is IGMP's own group and never crosses a gateway`);
    if (len < 32 && dir !== 'in') {
      fail(`${JSON.stringify(item)}: ${dir} needs single groups (a sender's node replicates per group, so a gateway can only ask for groups it can name); ranges are for in`);
    }
    const clash = out.find((o) => overlaps(o.range, range));
    if (clash) fail(`${JSON.stringify(item)} overlaps ${clash.entry.prefix}=${clash.entry.direction}; give each group one entry`);
    out.push({ entry: { prefix: `${formatIpv4(network)}/${len}`, base: formatIpv4(network), len, direction: dir }, range });
  }
  return out.map((o) => o.entry);
}

export const carriesIn = (g: GatewayGroup): boolean => g.direction === 'in' || g.direction === 'both';
export const carriesOut = (g: GatewayGroup): boolean => g.direction === 'out' || g.direction === 'both';

/** The entry that holds `ip` for `direction`, if any. */
export function entryFor(groups: readonly GatewayGroup[], ip: string, direction: 'in' | 'out'): GatewayGroup | undefined {
  const n = parseIpv4(ip);
  if (n === undefined) return undefined;
  return groups.find((g) => (direction === 'in' ? carriesIn(g) : carriesOut(g)) && (n & maskOf(g.len)) >>> 0 === parseIpv4(g.base));
}

/**
 * The groups a gateway joins on its interface: every inbound group some member joined
 * (`demanded`, routable groups announced by the domain), plus the link-local inbound groups,
 * which are never announced (they reach every member) and so are joined whenever configured.
 * Sorted, deduplicated.
 */
export function groupsToJoin(groups: readonly GatewayGroup[], demanded: Iterable<string>): string[] {
  const want = new Set<string>();
  for (const g of groups) if (carriesIn(g) && g.len === 32 && isLinkLocalMulticast(g.base)) want.add(g.base);
  for (const d of demanded) if (!isLinkLocalMulticast(d) && entryFor(groups, d, 'in')) want.add(d);
  return [...want].sort((a, b) => (parseIpv4(a) ?? 0) - (parseIpv4(b) ?? 0));
}

export interface JoinChoice {
  /** The groups to hold, sorted. */
  readonly join: string[];
  /** Wanted but left out (over `max`), sorted. */
  readonly unjoined: string[];
}

/**
 * Which of the wanted groups the gateway joins when they are more than `max`: configured single
 * groups first, then the groups most members and nodes joined (`demand`), then the groups already
 * joined (a newcomer never takes the place of a joined group only by its address), then the
 * lowest address. So one member joining many groups of a range cannot push out a group another
 * member joined before, nor a group more members share. Pure.
 */
export function chooseJoins(groups: readonly GatewayGroup[], demand: ReadonlyMap<string, number>, joined: ReadonlySet<string>, max: number): JoinChoice {
  const wanted = groupsToJoin(groups, demand.keys());
  const singles = new Set(groups.filter((g) => carriesIn(g) && g.len === 32).map((g) => g.base));
  const ip = (g: string): number => parseIpv4(g) ?? 0;
  const ranked = [...wanted].sort(
    (a, b) => Number(singles.has(b)) - Number(singles.has(a)) || (demand.get(b) ?? 0) - (demand.get(a) ?? 0) || Number(joined.has(b)) - Number(joined.has(a)) || ip(a) - ip(b),
  );
  const byIp = (a: string, b: string): number => ip(a) - ip(b);
  return { join: ranked.slice(0, max).sort(byIp), unjoined: ranked.slice(max).sort(byIp) };
}
