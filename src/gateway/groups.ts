/**
 * What a gateway lets cross: `--gateway-group GROUP[/LEN]=in|out|both` entries, parsed and checked.
 * Pure. Nothing crosses unless an entry lists it, so the parser is strict: every mistake is a
 * ConfigError that names the flag and the entry. Groups of both families, IPv4 and IPv6.
 *
 * - `in` (outside -> pods) may be a range: the gateway joins, on its interface, the groups of the
 *   range that member pods joined (a range is a filter on demand, never a join of 2^n groups).
 * - `out` and `both` name single groups: a sender's node replicates per group (the VXLAN MDB), so
 *   the gateway can only ask for groups it can name.
 * - Link-local groups (224.0.0.0/24) are listed one by one, and the IGMP machinery (224.0.0.0,
 *   .1 all-hosts, .2 all-routers, .22 IGMPv3 reports) never crosses.
 * - IPv6 follows the same rules with the scopes of src/net/ipv6.ts: a range is at least a /16, so
 *   it has one scope, and that scope is routable (realm-local or wider); interface-local groups
 *   never cross; link-local ones (ffX2::) are listed one by one and cross inbound only (pods send
 *   them from fe80:: addresses, which the gateway cannot tell from the LAN's own, so an outbound
 *   copy could come back in: a loop it could not cut); the groups of Neighbor Discovery and MLD
 *   (ff02::1 all-nodes, ff02::2 all-routers, ff02::16 MLDv2 reports, the solicited-node groups)
 *   never do, and ICMPv6 never crosses at all (src/gateway/nft.ts).
 */
import { ConfigError } from '../errors.js';
import { compareGroups, familyOf, isLinkLocalGroup } from '../net/groups.js';
import type { Family } from '../net/groups.js';
import { formatIpv4, maskOf, parseIpv4 } from '../net/ipv4.js';
import { formatIpv6, isIpv6Multicast, isSolicitedNode, multicastScope, parseIpv6 } from '../net/ipv6.js';

export type GatewayDirection = 'in' | 'out' | 'both';

export interface GatewayGroup {
  /** `a.b.c.d/len` or `ff05::/16` (RFC 5952), host bits clear. */
  readonly prefix: string;
  /** The first address of the range (the group itself when len is 32, or 128 for IPv6), canonical. */
  readonly base: string;
  readonly len: number;
  readonly direction: GatewayDirection;
}

export const MAX_GATEWAY_GROUPS = 256;
const FLAG = '--gateway-group';
const NEVER = new Set(['224.0.0.0', '224.0.0.1', '224.0.0.2', '224.0.0.22']);
/** Neighbor Discovery's and MLD's own groups (the solicited-node ones are checked by isSolicitedNode). */
const NEVER6 = new Set(['ff02::1', 'ff02::2', 'ff02::16']);
const LINK_LOCAL = { network: parseIpv4('224.0.0.0')!, prefix: 24 };
/** The shortest IPv6 range: ff00::/8 plus the flags and scope (one scope per range). */
export const MIN_PREFIX6 = 16;

function fail(message: string): never {
  throw new ConfigError(`${FLAG} (or KMCAST_GATEWAY_GROUP): ${message}`, { fields: { flag: FLAG } });
}

/** The family of an entry's group. */
export function familyOfGroup(g: GatewayGroup): Family {
  return familyOf(g.base) ?? 4;
}

/** The number of bits of an entry's family (32 or 128): `len` equal to it is a single group. */
export const bitsOf = (g: GatewayGroup): number => (familyOfGroup(g) === 6 ? 128 : 32);
export const isSingle = (g: GatewayGroup): boolean => g.len === bitsOf(g);

/** An address range of either family as numbers, for the overlap check. */
interface Span {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

function span(family: Family, bytes: Uint8Array, len: number): Span {
  const bits = BigInt(bytes.length * 8);
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  const host = (1n << (bits - BigInt(len))) - 1n;
  return { family, first: n & ~host, last: n | host };
}

const overlaps = (a: Span, b: Span): boolean => a.family === b.family && a.first <= b.last && b.first <= a.last;

const ipv4Bytes = (n: number): Uint8Array => Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);

/** One IPv4 entry checked: its canonical entry and its span. */
function parseEntry4(item: string, addr: string, len: number, dir: GatewayDirection): GatewayGroup {
  const ip = parseIpv4(addr);
  if (ip === undefined) fail(`${JSON.stringify(item)}: ${JSON.stringify(addr)} is not an IPv4 or IPv6 address`);
  if (len < 4 || len > 32) fail(`${JSON.stringify(item)}: the prefix length must be 4 to 32 (a range inside 224.0.0.0/4)`);
  const network = (ip & maskOf(len)) >>> 0;
  if (network !== ip) fail(`${JSON.stringify(item)}: host bits are set; did you mean ${formatIpv4(network)}/${len}?`);
  if ((ip & 0xf0000000) >>> 0 !== 0xe0000000) fail(`${JSON.stringify(item)}: ${addr} is not a multicast group (224.0.0.0/4)`);
  if (len < 32 && overlaps(span(4, ipv4Bytes(network), len), span(4, ipv4Bytes(LINK_LOCAL.network), LINK_LOCAL.prefix))) {
    fail(`${JSON.stringify(item)}: a range may not cover 224.0.0.0/24; list link-local groups one by one (e.g. 224.0.0.251=both for mDNS)`);
  }
  if (len === 32 && NEVER.has(addr)) fail(`${JSON.stringify(item)}: ${addr} is IGMP's own group and never crosses a gateway`);
  return { prefix: `${formatIpv4(network)}/${len}`, base: formatIpv4(network), len, direction: dir };
}

/** One IPv6 entry checked (the scope rules of src/net/ipv6.ts). */
function parseEntry6(item: string, bytes: Buffer, len: number, dir: GatewayDirection): GatewayGroup {
  const q = JSON.stringify(item);
  if (len < MIN_PREFIX6 || len > 128) fail(`${q}: an IPv6 prefix length must be ${MIN_PREFIX6} to 128 (a range inside one scope of ff00::/8)`);
  const network = Buffer.from(bytes);
  for (let bit = len; bit < 128; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
  const base = formatIpv6(network);
  if (!network.equals(bytes)) fail(`${q}: host bits are set; did you mean ${base}/${len}?`);
  if (!isIpv6Multicast(network)) fail(`${q}: ${base} is not an IPv6 multicast group (ff00::/8)`);
  const scope = multicastScope(network)!;
  if (scope === 1) fail(`${q}: ${base} is interface-local (scope 1): it never leaves a host, so it cannot cross a gateway`);
  if (scope === 0 || scope === 0xf) fail(`${q}: ${base} has the reserved scope ${scope.toString(16)}`);
  if (scope === 2) {
    if (len < 128) fail(`${q}: a range may not be link-local (ffX2::); list link-local groups one by one (e.g. ff02::fb=in for mDNS)`);
    if (NEVER6.has(base) || isSolicitedNode(network)) fail(`${q}: ${base} is a group of Neighbor Discovery or MLD and never crosses a gateway`);
    if (dir !== 'in') {
      fail(`${q}: link-local IPv6 groups cross inbound only (${base}=in): pods send them from fe80:: addresses the gateway cannot tell from the LAN's own, so an outbound copy could loop back in`);
    }
  }
  return { prefix: `${base}/${len}`, base, len, direction: dir };
}

/** `values` (each may be a comma list) -> entries in the order given. Throws ConfigError. */
export function parseGatewayGroups(values: readonly string[]): GatewayGroup[] {
  const items = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  if (items.length > MAX_GATEWAY_GROUPS) fail(`${items.length} entries; at most ${MAX_GATEWAY_GROUPS} (use ranges for inbound groups)`);
  const out: { entry: GatewayGroup; range: Span }[] = [];
  for (const item of items) {
    const m = /^([^=/\s]+)(?:\/(\d{1,3}))?=(\w*)$/.exec(item);
    if (!m) fail(`${JSON.stringify(item)} is not GROUP[/LEN]=in|out|both (e.g. 239.10.0.0/16=in, 224.0.0.251=both or ff05::1:3=both)`);
    const [, addr, lenText, dir] = m;
    if (dir !== 'in' && dir !== 'out' && dir !== 'both') fail(`${JSON.stringify(item)}: the direction must be in, out or both, not ${JSON.stringify(dir)}`);
    const v6 = parseIpv6(addr!);
    const len = lenText === undefined ? (v6 ? 128 : 32) : Number(lenText);
    const entry = v6 ? parseEntry6(item, v6, len, dir) : parseEntry4(item, addr!, len, dir);
    if (!isSingle(entry) && dir !== 'in') {
      fail(`${JSON.stringify(item)}: ${dir} needs single groups (a sender's node replicates per group, so a gateway can only ask for groups it can name); ranges are for in`);
    }
    const range = v6 ? span(6, parseIpv6(entry.base)!, len) : span(4, ipv4Bytes(parseIpv4(entry.base)!), len);
    const clash = out.find((o) => overlaps(o.range, range));
    if (clash) fail(`${JSON.stringify(item)} overlaps ${clash.entry.prefix}=${clash.entry.direction}; give each group one entry`);
    out.push({ entry, range });
  }
  return out.map((o) => o.entry);
}

export const carriesIn = (g: GatewayGroup): boolean => g.direction === 'in' || g.direction === 'both';
export const carriesOut = (g: GatewayGroup): boolean => g.direction === 'out' || g.direction === 'both';

/** An address of either family as bytes (undefined: neither). */
function bytesOf(text: string): Uint8Array | undefined {
  const v4 = parseIpv4(text);
  return v4 !== undefined ? ipv4Bytes(v4) : parseIpv6(text);
}

/** The entry that holds `ip` for `direction`, if any. */
export function entryFor(groups: readonly GatewayGroup[], ip: string, direction: 'in' | 'out'): GatewayGroup | undefined {
  const family = familyOf(ip);
  const bytes = bytesOf(ip);
  if (family === undefined || bytes === undefined) return undefined;
  return groups.find((g) => {
    if (!(direction === 'in' ? carriesIn(g) : carriesOut(g)) || familyOfGroup(g) !== family) return false;
    return span(family, bytes, g.len).first === span(family, bytesOf(g.base)!, g.len).first;
  });
}

/**
 * The groups a gateway joins on its interface: every inbound group some member joined
 * (`demanded`, routable groups announced by the domain), plus the link-local inbound groups,
 * which are never announced (they reach every member) and so are joined whenever configured.
 * Sorted, deduplicated.
 */
export function groupsToJoin(groups: readonly GatewayGroup[], demanded: Iterable<string>): string[] {
  const want = new Set<string>();
  for (const g of groups) if (carriesIn(g) && isSingle(g) && isLinkLocalGroup(g.base)) want.add(g.base);
  for (const d of demanded) if (!isLinkLocalGroup(d) && entryFor(groups, d, 'in')) want.add(d);
  return [...want].sort(compareGroups);
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
  const singles = new Set(groups.filter((g) => carriesIn(g) && isSingle(g)).map((g) => g.base));
  const ranked = [...wanted].sort(
    (a, b) => Number(singles.has(b)) - Number(singles.has(a)) || (demand.get(b) ?? 0) - (demand.get(a) ?? 0) || Number(joined.has(b)) - Number(joined.has(a)) || compareGroups(a, b),
  );
  return { join: ranked.slice(0, max).sort(compareGroups), unjoined: ranked.slice(max).sort(compareGroups) };
}
