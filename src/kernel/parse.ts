/**
 * Pure parsers of `ip -j` / `bridge -j` output (iproute2 >= 6.1 JSON). Each takes the raw stdout
 * and returns plain typed data; unknown fields are ignored, a missing device gives an empty list.
 * Tested on recorded fixtures in test/fixtures/iproute2.
 */

type Json = Record<string, unknown>;

function parseArray(stdout: string): Json[] {
  const text = stdout.trim();
  if (!text) return [];
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? (value.filter((v) => typeof v === 'object' && v !== null) as Json[]) : [];
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

export interface VxlanLink {
  readonly name: string;
  readonly ifindex: number;
  readonly kind: string | undefined;
  readonly vni: number | undefined;
  readonly port: number | undefined;
  readonly local: string | undefined;
  /** The underlay device (`dev` at creation). */
  readonly underlay: string | undefined;
  readonly learning: boolean | undefined;
  readonly mtu: number;
  readonly up: boolean;
  readonly mac: string | undefined;
  readonly addrGenMode: string | undefined;
}

/** `ip -j -d link show dev NAME` → the link, or undefined when the output is empty. */
export function parseLink(stdout: string): VxlanLink | undefined {
  const [l] = parseArray(stdout);
  if (!l) return undefined;
  const info = (l.linkinfo ?? {}) as Json;
  const data = (info.info_data ?? {}) as Json;
  const flags = Array.isArray(l.flags) ? (l.flags as unknown[]) : [];
  return {
    name: str(l.ifname) ?? '',
    ifindex: num(l.ifindex) ?? 0,
    kind: str(info.info_kind),
    vni: num(data.id),
    port: num(data.port),
    // An IPv6 underlay's device prints its local address as `local6`.
    local: str(data.local) ?? str(data.local6),
    underlay: str(data.link),
    learning: typeof data.learning === 'boolean' ? data.learning : undefined,
    mtu: num(l.mtu) ?? 0,
    up: flags.includes('UP'),
    mac: str(l.address),
    addrGenMode: str(l.inet6_addr_gen_mode),
  };
}

/** `ip -j addr show dev NAME` → IPv4 addresses as "a.b.c.d/len". */
export function parseIpv4Addrs(stdout: string): string[] {
  const out: string[] = [];
  for (const l of parseArray(stdout)) {
    for (const a of (Array.isArray(l.addr_info) ? l.addr_info : []) as Json[]) {
      if (a.family === 'inet' && typeof a.local === 'string') out.push(`${a.local}/${num(a.prefixlen) ?? 32}`);
    }
  }
  return out;
}

/** `ip -j addr show dev NAME` → IPv6 addresses of scope global, as `ADDRESS/PREFIXLEN`. */
export function parseIpv6Addrs(stdout: string): string[] {
  const out: string[] = [];
  for (const l of parseArray(stdout)) {
    for (const a of (Array.isArray(l.addr_info) ? l.addr_info : []) as Json[]) {
      if (a.family === 'inet6' && a.scope === 'global' && typeof a.local === 'string') out.push(`${a.local}/${num(a.prefixlen) ?? 128}`);
    }
  }
  return out;
}

export interface FdbEntry {
  readonly mac: string;
  readonly dst: string | undefined;
}

/** `bridge -j fdb show dev NAME`. */
export function parseFdb(stdout: string): FdbEntry[] {
  return parseArray(stdout).map((e) => ({ mac: str(e.mac) ?? '', dst: str(e.dst) }));
}

export interface MdbEntry {
  readonly grp: string;
  readonly dst: string | undefined;
}

/** `bridge -j mdb show dev NAME`: one object per bridge/vxlan holding an `mdb` array. */
export function parseMdb(stdout: string): MdbEntry[] {
  const out: MdbEntry[] = [];
  for (const block of parseArray(stdout)) {
    for (const e of (Array.isArray(block.mdb) ? block.mdb : []) as Json[]) {
      if (typeof e.grp === 'string') out.push({ grp: e.grp, dst: str(e.dst) });
    }
  }
  return out;
}

export interface RouteEntry {
  /** unicast (default when iproute2 omits it), local, broadcast, blackhole, multicast... */
  readonly type: string;
  readonly dst: string;
  readonly dev: string | undefined;
  readonly gateway: string | undefined;
  /** main when iproute2 omits it. */
  readonly table: string;
  readonly scope: string | undefined;
  readonly prefsrc: string | undefined;
  readonly protocol: string | undefined;
  /** The route's metric (priority); undefined when iproute2 omits it (0). */
  readonly metric?: number | undefined;
  /** The route's MTU metric (`mtu N`), when it has one. */
  readonly mtu?: number | undefined;
}

/** `ip -j route show [table all]`. */
export function parseRoutes(stdout: string): RouteEntry[] {
  return parseArray(stdout).map((r) => ({
    type: str(r.type) ?? 'unicast',
    dst: str(r.dst) ?? '',
    dev: str(r.dev),
    gateway: str(r.gateway),
    table: str(r.table) ?? 'main',
    scope: str(r.scope),
    prefsrc: str(r.prefsrc),
    protocol: str(r.protocol),
    ...(typeof r.metric === 'number' ? { metric: r.metric } : {}),
    ...routeMtu(r.metrics),
  }));
}

/** iproute2 prints route metrics as `"metrics": [{ "mtu": 1430 }]`. */
function routeMtu(metrics: unknown): { mtu?: number } {
  if (!Array.isArray(metrics)) return {};
  for (const m of metrics as unknown[]) {
    const mtu = m !== null && typeof m === 'object' ? (m as Json).mtu : undefined;
    if (typeof mtu === 'number') return { mtu };
  }
  return {};
}

/** `ip -j maddr show dev NAME` → joined IPv4 groups. */
export function parseIpv4Maddrs(stdout: string): string[] {
  const out: string[] = [];
  for (const l of parseArray(stdout)) {
    for (const m of (Array.isArray(l.maddr) ? l.maddr : []) as Json[]) {
      if (m.family === 'inet' && typeof m.address === 'string') out.push(m.address);
    }
  }
  return out;
}

/** `ip -j maddr show dev NAME` → joined IPv4 groups with their number of joins ("users", 1 when absent). */
export function parseIpv4MaddrUsers(stdout: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of parseArray(stdout)) {
    for (const m of (Array.isArray(l.maddr) ? l.maddr : []) as Json[]) {
      if (m.family === 'inet' && typeof m.address === 'string') out.set(m.address, (out.get(m.address) ?? 0) + (num(m.users) ?? 1));
    }
  }
  return out;
}

/**
 * `ip -j maddr show dev NAME` → joined groups of both families (as iproute2 prints them) with
 * their number of joins ("users", 1 when absent).
 */
export function parseMaddrUsers(stdout: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of parseArray(stdout)) {
    for (const m of (Array.isArray(l.maddr) ? l.maddr : []) as Json[]) {
      if ((m.family === 'inet' || m.family === 'inet6') && typeof m.address === 'string') out.set(m.address, (out.get(m.address) ?? 0) + (num(m.users) ?? 1));
    }
  }
  return out;
}

export interface LinkStats {
  readonly rxPackets: number;
  readonly txPackets: number;
  readonly txErrors: number;
  readonly txDropped: number;
  /** On a VXLAN device, a packet to a blackholed remote counts here (the catch-all MDB entry). */
  readonly txCarrierErrors: number;
}

/** `ip -j -s link show dev NAME`. */
export function parseLinkStats(stdout: string): LinkStats | undefined {
  const [l] = parseArray(stdout);
  if (!l) return undefined;
  const s = (l.stats64 ?? l.stats ?? {}) as Json;
  const rx = (s.rx ?? {}) as Json;
  const tx = (s.tx ?? {}) as Json;
  return {
    rxPackets: num(rx.packets) ?? 0,
    txPackets: num(tx.packets) ?? 0,
    txErrors: num(tx.errors) ?? 0,
    txDropped: num(tx.dropped) ?? 0,
    txCarrierErrors: num(tx.carrier_errors) ?? 0,
  };
}

/** `ip -V` → [major, minor], e.g. "ip utility, iproute2-6.15.0, libbpf 1.1.2" → [6, 15]. */
export function parseIpVersion(stdout: string): [number, number] | undefined {
  const m = /iproute2-(?:ss)?v?(\d+)\.(\d+)/.exec(stdout);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** iproute2 learned `bridge mdb ... dst` for VXLAN in 6.3 (kernel support came in 6.3 too). */
export const MDB_DST_MIN_VERSION: readonly [number, number] = [6, 3];

export function versionAtLeast(v: readonly [number, number], min: readonly [number, number]): boolean {
  return v[0] > min[0] || (v[0] === min[0] && v[1] >= min[1]);
}

/** `ip -j route get IP` → the device the route leads to (the first entry's dev). */
export function parseRouteGet(stdout: string): { dev: string | undefined; gateway: string | undefined; type: string } | undefined {
  const [r] = parseArray(stdout);
  if (!r) return undefined;
  return { dev: str(r.dev), gateway: str(r.gateway), type: str(r.type) ?? 'unicast' };
}

export interface LinkInfo {
  readonly name: string;
  readonly ifindex: number;
  /** info_kind with -d (veth, bridge, vxlan...). */
  readonly kind: string | undefined;
  readonly master: string | undefined;
  /** The namespace id (in the reading namespace) of a veth's peer, when the peer is elsewhere. */
  readonly linkNetnsid: number | undefined;
  /** The peer's ifindex (in its namespace). */
  readonly linkIndex: number | undefined;
  readonly up: boolean;
  readonly mtu?: number;
}

/** `ip -j -d link show [dev NAME | master BR]` → every link. */
export function parseLinks(stdout: string): LinkInfo[] {
  return parseArray(stdout).map((l) => {
    const info = (l.linkinfo ?? {}) as Json;
    const flags = Array.isArray(l.flags) ? (l.flags as unknown[]) : [];
    return {
      name: str(l.ifname) ?? '',
      ifindex: num(l.ifindex) ?? 0,
      kind: str(info.info_kind),
      master: str(l.master),
      linkNetnsid: num(l.link_netnsid),
      linkIndex: num(l.link_index),
      up: flags.includes('UP'),
      ...(num(l.mtu) !== undefined ? { mtu: num(l.mtu) } : {}),
    };
  });
}

/** `ip -j netns list-id` → nsid → namespace name (ids without a name are left out). */
export function parseNetnsIds(stdout: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of parseArray(stdout)) {
    const id = num(e.nsid);
    const name = str(e.name);
    if (id !== undefined && name !== undefined) out.set(id, name);
  }
  return out;
}

/** `ip -j netns list` → the names of the named network namespaces. */
export function parseNetnsNames(stdout: string): string[] {
  return parseArray(stdout).flatMap((e) => (typeof e.name === 'string' ? [e.name] : []));
}

/** `ip netns pids NAME` → the pids of the processes in the namespace. */
export function parsePids(stdout: string): number[] {
  return stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

/** `ip -j maddr show` (all devices) → joined IPv4 groups of the device with `ifindex`. */
export function parseIpv4MaddrsOf(stdout: string, ifindex: number): string[] {
  const out: string[] = [];
  for (const l of parseArray(stdout)) {
    if (num(l.ifindex) !== ifindex) continue;
    for (const m of (Array.isArray(l.maddr) ? l.maddr : []) as Json[]) {
      if (m.family === 'inet' && typeof m.address === 'string') out.push(m.address);
    }
  }
  return out;
}

/**
 * `ip -j maddr show` (all devices) → the multicast groups of both families joined on the device
 * with `ifindex`, as iproute2 prints them (the callers canonicalise and filter).
 */
export function parseMaddrsOf(stdout: string, ifindex: number): string[] {
  const out: string[] = [];
  for (const l of parseArray(stdout)) {
    if (num(l.ifindex) !== ifindex) continue;
    for (const m of (Array.isArray(l.maddr) ? l.maddr : []) as Json[]) {
      if ((m.family === 'inet' || m.family === 'inet6') && typeof m.address === 'string') out.push(m.address);
    }
  }
  return out;
}

/** `ip -j maddr show` (all devices) → the groups of both families joined on any of them. */
export function parseAllMaddrs(stdout: string): string[] {
  return parseArray(stdout).flatMap((l) => (typeof l.ifindex === 'number' ? parseMaddrsOf(JSON.stringify([l]), l.ifindex) : []));
}

/** `ip -j addr show` (all devices) → the IPv6 addresses of scope global (without prefix) of the device with `ifindex`. */
export function parseIpv6AddrsOf(stdout: string, ifindex: number): string[] {
  const out: string[] = [];
  for (const l of parseArray(stdout)) {
    if (num(l.ifindex) !== ifindex) continue;
    for (const a of (Array.isArray(l.addr_info) ? l.addr_info : []) as Json[]) {
      if (a.family === 'inet6' && a.scope === 'global' && typeof a.local === 'string') out.push(a.local);
    }
  }
  return out;
}

/** `ip -j addr show` (all devices) → IPv4 addresses (without prefix) of the device with `ifindex`. */
export function parseIpv4AddrsOf(stdout: string, ifindex: number): string[] {
  const out: string[] = [];
  for (const l of parseArray(stdout)) {
    if (num(l.ifindex) !== ifindex) continue;
    for (const a of (Array.isArray(l.addr_info) ? l.addr_info : []) as Json[]) {
      if (a.family === 'inet' && typeof a.local === 'string') out.push(a.local);
    }
  }
  return out;
}
