/**
 * Desired vs actual → the commands that converge the data plane. Pure. Every command is
 * idempotent against the state it was planned from, so replaying a plan twice is harmless, and
 * an empty plan means the kernel already matches.
 */
import type { FdbEntry, MdbEntry, RouteEntry, VxlanLink } from '../kernel/parse.js';
import { canonicalGroup } from '../net/groups.js';
import { canonicalIpv6 } from '../net/ipv6.js';
import type { DesiredRoute, DesiredState, MdbKey } from './desired.js';
import { BLACKHOLE_IP, BLACKHOLE_IP6, FLOOD_MAC, hostRouteDst, IPV6_UNDERLAY_MTU_ROUTE, mdbKey } from './desired.js';

export interface ActualState {
  readonly link: VxlanLink | undefined;
  readonly addrs: readonly string[];
  readonly routes: readonly RouteEntry[];
  readonly fdb: readonly FdbEntry[];
  readonly mdb: readonly MdbEntry[];
}

export const EMPTY_ACTUAL: ActualState = { link: undefined, addrs: [], routes: [], fdb: [], mdb: [] };

export interface Plan {
  /** The existing device is not the one we want (wrong kind, VNI, port, address...): delete it. */
  readonly recreate: boolean;
  readonly reason?: string;
  /** Lines for `ip -batch -` (run first: the device and routes must exist before FDB/MDB). */
  readonly ip: readonly string[];
  /** Lines for `bridge -batch -`. */
  readonly bridge: readonly string[];
}

export function isEmptyPlan(p: Plan): boolean {
  return p.ip.length === 0 && p.bridge.length === 0;
}

/** Why an existing link cannot be reused, or undefined when it can. */
export function linkMismatch(want: DesiredState['link'], have: VxlanLink): string | undefined {
  if (have.kind !== 'vxlan') return `${have.name} is a ${have.kind ?? 'non-vxlan'} device, not vxlan`;
  if (have.vni !== want.vni) return `VNI ${have.vni} != ${want.vni}`;
  if (have.port !== want.port) return `port ${have.port} != ${want.port}`;
  if (have.local !== want.local) return `local ${have.local ?? 'unset'} != ${want.local}`;
  if (have.underlay !== want.underlay) return `underlay ${have.underlay ?? 'unset'} != ${want.underlay}`;
  if (have.learning) return 'learning is on';
  if (have.addrGenMode !== undefined && have.addrGenMode !== 'none') return `addrgenmode ${have.addrGenMode}`;
  return undefined;
}

/** A blackhole has no device to tell it by (IPv6 prints `dev lo`); other routes do (vx0's and eth0's ff00::/8). */
function routeKey(r: { type: string; dst: string; table: string; dev?: string | undefined }): string {
  return `${r.type} ${hostRouteDst(r.dst)} ${r.table}${r.type === 'blackhole' ? '' : ` ${r.dev ?? ''}`}`;
}

const isV6 = (dst: string): boolean => dst.includes(':');

function routeArgs(r: DesiredRoute): string {
  const parts = [r.type === 'unicast' ? '' : r.type, r.type === 'blackhole' ? `${r.dst}/${r.dst.includes(':') ? 128 : 32}` : r.dst];
  if (r.dev) parts.push('dev', r.dev);
  if (r.table !== 'main') parts.push('table', r.table);
  // IPv6 has no route scopes; its metric is what tells our route from the kernel's.
  if (r.type !== 'blackhole' && !isV6(r.dst)) parts.push('scope', 'link');
  if (r.src) parts.push('src', r.src);
  if (r.metric !== undefined) parts.push('metric', String(r.metric));
  if (r.mtu !== undefined) parts.push('mtu', String(r.mtu));
  return parts.filter(Boolean).join(' ');
}

/** An address as `ip addr` prints it, in one spelling (IPv6: RFC 5952). */
function canonicalAddr(a: string): string {
  const [ip = '', len] = a.split('/');
  const c = canonicalIpv6(ip);
  return c === undefined ? a : `${c}/${len ?? '128'}`;
}

/** The one spelling of an MDB group as the kernel lists it (the catch-all 0.0.0.0 is no group). */
function canonicalMdb(e: MdbKey): MdbKey {
  return { grp: canonicalGroup(e.grp) ?? e.grp, dst: e.dst };
}

/** Routes we own: non-kernel routes through the device, our blackhole, and the underlay's MTU route. */
function isManagedRoute(r: RouteEntry, device: string, underlay: string): boolean {
  if (r.protocol === 'kernel') return false;
  if (r.type === 'blackhole') return [BLACKHOLE_IP, BLACKHOLE_IP6].includes(hostRouteDst(r.dst));
  if (r.dev === underlay) return isUnderlayMtuRoute(r);
  return r.dev === device;
}

/** Ours on the underlay, told from the kernel's and the CNI's routes by its metric. */
function isUnderlayMtuRoute(r: { type: string; dst: string; table: string; metric?: number | undefined }): boolean {
  const u = IPV6_UNDERLAY_MTU_ROUTE;
  return r.type === u.type && r.dst === u.dst && r.table === u.table && r.metric === u.metric;
}

export interface PlanOptions {
  /**
   * Remove FDB and MDB entries that are not desired (default true). False right after an agent
   * restart that adopted a populated device: until the peers have been heard from, the entries
   * the previous agent left are the best knowledge there is, and removing them would cut traffic.
   */
  readonly prune?: boolean;
}

export function plan(desired: DesiredState, actual: ActualState, options: PlanOptions = {}): Plan {
  const prune = options.prune ?? true;
  const dev = desired.link.name;
  const ip: string[] = [];
  const bridge: string[] = [];
  const reason = actual.link ? linkMismatch(desired.link, actual.link) : undefined;
  const recreate = reason !== undefined;
  const have: ActualState = actual.link === undefined || recreate ? { ...EMPTY_ACTUAL, routes: actual.routes } : actual;
  if (!actual.link || recreate) {
    if (recreate) ip.push(`link del ${dev}`);
    const l = desired.link;
    ip.push(`link add ${dev} type vxlan id ${l.vni} dstport ${l.port} dev ${l.underlay} local ${l.local} nolearning`);
    // No IPv6 link-local address: its DAD and router solicitations would flood every peer.
    ip.push(`link set ${dev} addrgenmode none`);
  }

  const wantAddrs = new Set(desired.addrs.map(canonicalAddr));
  const haveAddrs = new Set(have.link ? have.addrs.map(canonicalAddr) : []);
  for (const a of haveAddrs) if (!wantAddrs.has(a)) ip.push(`addr del ${a} dev ${dev}`);
  // IPv6: no duplicate address detection (the address is eth0's, and vx0's NS would go nowhere)
  // and no prefix route (vx0 carries multicast only).
  for (const a of wantAddrs) if (!haveAddrs.has(a)) ip.push(`addr add ${a} dev ${dev}${isV6(a) ? ' nodad noprefixroute' : ''}`);
  if (!have.link || have.link.mtu !== desired.link.mtu || !have.link.up) {
    ip.push(`link set ${dev} mtu ${desired.link.mtu} up`);
  }

  const underlay = desired.link.underlay;
  const adoptable = have.link ? have.routes : actual.routes.filter((r) => r.type === 'blackhole' || (r.dev === underlay && isUnderlayMtuRoute(r)));
  const managed = new Map(adoptable.filter((r) => isManagedRoute(r, dev, underlay)).map((r) => [routeKey(r), r] as const));
  const wanted = new Map(desired.routes.map((r) => [routeKey(r), r] as const));
  for (const [k, r] of managed) {
    if (!wanted.has(k)) ip.push(`route del ${routeArgsOf(r)}`);
  }
  for (const [k, r] of wanted) {
    const h = managed.get(k);
    // The kernel prints an IPv6 blackhole route with `dev lo`: a blackhole has no device to compare.
    const same =
      h && (r.type === 'blackhole' || (h.dev ?? undefined) === r.dev) && (r.src === undefined || h.prefsrc === r.src) && (r.metric === undefined || (h.metric ?? 0) === r.metric) && h.mtu === r.mtu;
    if (!same) ip.push(`route replace ${routeArgs(r)}`);
  }

  const haveFdb = have.fdb.filter((e) => e.mac === FLOOD_MAC && e.dst).map((e) => e.dst!);
  const haveMdb = have.mdb.filter((e): e is MdbKey => e.dst !== undefined).map(canonicalMdb);
  bridge.push(...entryCommands(dev, { fdb: desired.fdb, mdb: desired.mdb }, { fdb: haveFdb, mdb: haveMdb }, prune));
  return reason ? { recreate, reason, ip, bridge } : { recreate, ip, bridge };
}

export interface Entries {
  /** Flood destinations. */
  readonly fdb: readonly string[];
  readonly mdb: readonly MdbKey[];
}

/**
 * `bridge -batch` lines that turn the `have` replication entries into `want`. Additions come
 * before removals: a peer set that changes never passes through an empty flood list.
 */
export function entryCommands(dev: string, want: Entries, have: Entries, prune = true): string[] {
  const out: string[] = [];
  const removals: string[] = [];
  const wantFdb = new Set(want.fdb);
  const haveFdb = new Set(have.fdb);
  for (const d of want.fdb) if (!haveFdb.has(d)) out.push(`fdb append ${FLOOD_MAC} dev ${dev} dst ${d}`);
  for (const d of haveFdb) if (prune && !wantFdb.has(d)) removals.push(`fdb del ${FLOOD_MAC} dev ${dev} dst ${d}`);
  const wantMdb = new Map(want.mdb.map((e) => [mdbKey(e), e] as const));
  const haveMdb = new Map(have.mdb.map((e) => [mdbKey(e), e] as const));
  for (const [k, e] of wantMdb) if (!haveMdb.has(k)) out.push(`mdb replace dev ${dev} port ${dev} grp ${e.grp} permanent dst ${e.dst}`);
  for (const [k, e] of haveMdb) if (prune && !wantMdb.has(k)) removals.push(`mdb del dev ${dev} port ${dev} grp ${e.grp} dst ${e.dst}`);
  return [...out, ...removals];
}

/** `ip` lines that remove our MTU route from the underlay (the device's own routes go with it). */
export function underlayRouteRemoval(routes: readonly RouteEntry[], underlay: string): string[] {
  return underlayMtuRouteCommands(routes, underlay, undefined);
}

/**
 * `ip` lines that give `dev` our IPv6 multicast MTU route (IPV6_UNDERLAY_MTU_ROUTE) at `mtu`, or
 * with `mtu` undefined remove it; nothing when the kernel already has it so. `routes` is the
 * namespace's `ip -6 route show table all`. The sidecar's eth0 gets it through plan(); node mode
 * gives it to member pods whose MTU is over what an IPv6 underlay carries (node/pod-routes.ts).
 */
export function underlayMtuRouteCommands(routes: readonly RouteEntry[], dev: string, mtu: number | undefined): string[] {
  const ours = routes.filter((r) => r.protocol !== 'kernel' && r.dev === dev && isUnderlayMtuRoute(r));
  if (mtu === undefined) return ours.map((r) => `route del ${routeArgsOf(r)}`);
  if (ours.length === 1 && ours[0]!.mtu === mtu) return [];
  return [`route replace ${routeArgs({ ...IPV6_UNDERLAY_MTU_ROUTE, dev, mtu })}`];
}

function routeArgsOf(r: RouteEntry): string {
  const parts = [r.type === 'unicast' ? '' : r.type, r.dst];
  if (r.dev) parts.push('dev', r.dev);
  if (r.table !== 'main') parts.push('table', r.table);
  // IPv6: without the metric, `route del` could take the kernel's route of the same prefix.
  if (isV6(r.dst)) parts.push('metric', String(r.metric ?? 0));
  return parts.filter(Boolean).join(' ');
}
