/**
 * The gateway's nftables table `netdev kmcast-gw`: rendered from plain data, replaced atomically in
 * one `nft -f` transaction, read back (chains, rules, per-group counters). Pure.
 *
 * Inbound, `lan-in` on the outside interface's ingress (before the node's own stack): UDP to a
 * configured inbound group is handed into the domain exactly like a member pod's datagram (a copy
 * out of every local member's host veth, then forwarded into the domain's VXLAN device, which
 * replicates once per member node by group), the outside source address kept. Dropped and counted
 * instead: a datagram from a pod of the domain or from a gateway's own address or MAC (our own
 * outbound traffic heard back: the loop), one below the TTL floor, one over the group's rate, one
 * of a group the per-group meter has no room for (`full`: a storm over more groups than the meter
 * holds is dropped, not let through unmetered), one over the direction's total rate (`total`: a
 * storm spread over many groups of a range). Every drop goes to a chain per direction and reason
 * (`in-drop-rate`, ...) that counts it per group where the counter set has room, then in a named
 * counter of the reason (always), then drops: a full counter set never turns a drop into a pass.
 * Anything else (other groups, IGMP queries, unicast, ARP, and every ICMPv6 message: Neighbor
 * Discovery to and from the interface, MLD) passes to the node untouched.
 *
 * IPv6 groups (when configured) have the same rules in chains of their own (`lan-in6`, `out6`,
 * `lan-snat6`), entered from the first rule of `lan-in`, `out` and `lan-snat` by protocol, with
 * sets of their own (`in-groups6`, `pods6`: the domain's IPv6 pod addresses, `gw-addrs6`, the
 * counter sets and meters with a `6`), and the same drop chains and named counters; the total
 * rate (`limit name "in-total"`) is one limit object for both families.
 *
 * Outbound, `out`, jumped to from the ingress of the domain's delivery hop (datagrams of remote
 * member pods, after the bridge that makes their checksum state right: src/node/delivery.ts) and
 * the VXLAN device's egress (datagrams of local member pods, forwarded in by the node table's
 * capture chains): UDP to
 * a configured outbound group whose source is a pod of the domain is copied once out of the
 * outside interface. Inbound datagrams pass the egress hook too and are not sent back out (their
 * source is not a pod: counted as `loop`). This chain never drops: the domain's own delivery
 * (the node table, priority -500) runs after it. `lan-snat`, on the outside interface's egress,
 * gives the copies the interface's address and MAC when --gateway-snat is on.
 *
 * Only the elected gateway has chains; a standby one keeps the sets (and so its counters).
 */
import { KmcastError } from '../errors.js';
import type { GatewayGroup } from './groups.js';
import { carriesIn, carriesOut, familyOfGroup, isSingle } from './groups.js';
import { MAX_DUPS_PER_RULE } from '../node/nft.js';

export const GATEWAY_TABLE = 'kmcast-gw';
export const GATEWAY_PRIORITY = -500;
/** Before the node table's delivery chain (-500): copy out first, deliver after. */
export const GATEWAY_VX_PRIORITY = -510;
/** Distinct groups counted per direction and reason (a range may hold many). */
export const COUNTER_SET_SIZE = 65_536;

export type Direction = 'in' | 'out';
/** Reasons counted per group (a counter set each) as well as in total. */
export type DropReason = 'rate' | 'ttl' | 'loop';
export const DROP_REASONS: readonly DropReason[] = ['rate', 'ttl', 'loop'];
/**
 * Every reason, each with a named counter per direction: `total`, `full` and `overlong` only in
 * total (`overlong`: inbound, on an IPv6 underlay, a frame the domain's VXLAN device could not carry).
 */
export type AnyDropReason = DropReason | 'total' | 'full' | 'overlong';
export const ALL_DROP_REASONS: readonly AnyDropReason[] = ['rate', 'ttl', 'loop', 'total', 'full', 'overlong'];
export const COUNTER_SETS: readonly string[] = (['in', 'out'] as const).flatMap((d) => [`${d}-pass`, ...DROP_REASONS.map((r) => `${d}-${r}`)]);
/** The IPv6 twins of COUNTER_SETS (`in-pass6`, ...), declared only with IPv6 groups. */
export const COUNTER_SETS6: readonly string[] = COUNTER_SETS.map((s) => `${s}6`);
/** A counter set's direction and kind (`pass` or a drop reason), whichever its family. */
export function counterSetKind(name: string): { direction: Direction; kind: string } {
  const [direction, kind = ''] = name.split('-') as [Direction, string | undefined];
  return { direction, kind: kind.replace(/6$/, '') };
}
/** The named counter (and the chain) of a direction's drops for a reason. */
export const dropName = (d: Direction, r: AnyDropReason): string => `${d}-drop-${r}`;
export const DROP_COUNTERS: readonly string[] = (['in', 'out'] as const).flatMap((d) => ALL_DROP_REASONS.map((r) => dropName(d, r)));

/** The reasons a plane drops for in direction `d`: `overlong` only inbound, on an IPv6 underlay. */
function reasonsOf(p: { readonly carried?: number }, d: Direction): AnyDropReason[] {
  return ALL_DROP_REASONS.filter((r) => r !== 'overlong' || (d === 'in' && p.carried !== undefined));
}

export interface GatewayPlane {
  readonly vni: number;
  /** The domain's VXLAN device. */
  readonly device: string;
  /** The far end of the domain's delivery hop, where remote members' datagrams arrive. */
  readonly delivery: string;
  /** The outside interface, its IPv4 address ('' for none: a gateway of IPv6 groups only) and MAC. */
  readonly lan: string;
  readonly lanIp: string;
  readonly lanMac: string;
  /** Its global IPv6 address (the SNAT source of IPv6 copies); needed when IPv6 groups go out with SNAT. */
  readonly lanIp6?: string;
  /** Host veths of the local members (the node table's delivery list for the domain). */
  readonly members: readonly string[];
  /** Every pod IP of the domain. */
  readonly pods: readonly string[];
  /** Every IPv6 address of the domain's pods (DNS AAAA and the local members' global addresses). */
  readonly pods6?: readonly string[];
  /** LAN addresses (IPv4 or IPv6) and MACs of the other gateways of the domain (ours are added). */
  readonly otherGatewayIps: readonly string[];
  readonly otherGatewayMacs: readonly string[];
  readonly groups: readonly GatewayGroup[];
  readonly snat: boolean;
  readonly minTtl: number;
  /** Per group and direction, datagrams per second; 0 = none. */
  readonly rate: number;
  /** Per direction, all groups together, datagrams per second; 0 = none. */
  readonly rateTotal: number;
  readonly active: boolean;
  /**
   * On an IPv6 underlay: the longest IP packet the domain's VXLAN device carries (underlay MTU -
   * 70, src/node/underlay.ts; the kernel never fragments VXLAN over IPv6). A longer inbound frame
   * would reach the local members only: it does not cross at all and is counted (`overlong`).
   */
  readonly carried?: number;
}

/** The limit statement's burst: a tenth of a second at the rate, at least 10 datagrams. */
export function burstFor(rate: number): number {
  return Math.max(10, Math.ceil(rate / 10));
}

function elements(values: readonly string[]): string {
  const uniq = [...new Set(values)];
  return uniq.length ? ` elements = { ${uniq.join(', ')} };` : '';
}

/** The chains the plane has (name -> rule count), as the read-back must show them. */
/** Rules that carry the copies to `members` local members and the forward (at least one). Pure. */
export function deliveryRules(members: number): number {
  return Math.max(1, Math.ceil(members / MAX_DUPS_PER_RULE));
}

/** The plane's IPv6 groups by direction (none: the table is what it was before IPv6). */
function groups6(p: GatewayPlane): { in: boolean; out: boolean } {
  const six = p.groups.filter((g) => familyOfGroup(g) === 6);
  return { in: six.some(carriesIn), out: six.some(carriesOut) };
}

/** The IPv4 SNAT rules of `lan-snat`: needed by IPv4 outbound groups, impossible without an IPv4 address. */
function snat4(p: GatewayPlane): boolean {
  return p.lanIp !== '' || p.groups.some((g) => familyOfGroup(g) === 4 && carriesOut(g));
}

export function expectedChains(p: GatewayPlane): Map<string, number> {
  const out = new Map<string, number>();
  if (!p.active) return out;
  const six = groups6(p);
  const any6 = six.in || six.out;
  const filters = (p.minTtl > 1 ? 1 : 0) + (p.rate > 0 ? 2 : 0) + (p.rateTotal > 0 ? 1 : 0);
  const sized = p.carried !== undefined ? 1 : 0;
  const drops = (d: Direction): void => {
    for (const r of reasonsOf(p, d)) out.set(dropName(d, r), (DROP_REASONS as readonly string[]).includes(r) ? (any6 ? 3 : 2) : 1);
  };
  if (p.groups.some(carriesIn)) {
    out.set('lan-in', (six.in ? 1 : 0) + 3 + 3 + sized + filters + 1 + deliveryRules(p.members.length));
    if (six.in) out.set('lan-in6', 2 + 3 + sized + filters + 1 + deliveryRules(p.members.length));
    drops('in');
  }
  if (p.groups.some(carriesOut)) {
    out.set('out', (six.out ? 1 : 0) + 4 + filters + 2);
    if (six.out) out.set('out6', 3 + filters + 2);
    drops('out');
    out.set('vx-in', 1);
    out.set('vx-out', 1);
    if (p.snat) {
      out.set('lan-snat', (six.out ? 1 : 0) + (snat4(p) ? 3 : 0));
      if (six.out) out.set('lan-snat6', 3);
    }
  }
  return out;
}

/**
 * First rule of `lan-in` and `out`. In a netdev chain `ip daddr != @set` and `meta l4proto != udp`
 * do not match a frame that is not IPv4 at all (ARP, IPv6), so without it such a frame fell
 * through to the final dup/fwd: a LAN host's ARP went into member pods and the VXLAN device (the
 * node never answered it), IPv6 reached the pods, LAN broadcasts went back out.
 */
export const IPV4_ONLY = 'meta protocol != ip return';
/** Before it, with IPv6 groups: IPv6 frames go to the chain of their family. */
export const TO_IPV6 = 'meta protocol ip6';

/** The `nft -f -` script: declare, delete, recreate: one atomic replace of the table. */
export function renderGateway(p: GatewayPlane): string {
  const single = (g: GatewayGroup): string => (isSingle(g) ? g.base : g.prefix);
  const of = (f: 4 | 6): GatewayGroup[] => p.groups.filter((g) => familyOfGroup(g) === f);
  const six = groups6(p);
  const any6 = six.in || six.out;
  const L: string[] = [`table netdev ${GATEWAY_TABLE}`, `delete table netdev ${GATEWAY_TABLE}`, `table netdev ${GATEWAY_TABLE} {`];
  L.push(`  set in-groups { type ipv4_addr; flags interval;${elements(of(4).filter(carriesIn).map(single))} }`);
  L.push(
    `  set out-groups { type ipv4_addr; flags interval;${elements(
      of(4)
        .filter(carriesOut)
        .map((g) => g.base),
    )} }`,
  );
  L.push(`  set pods { type ipv4_addr;${elements(p.pods)} }`);
  const gw4 = [p.lanIp, ...p.otherGatewayIps].filter((a) => a !== '' && !a.includes(':'));
  const gw6 = [p.lanIp6 ?? '', ...p.otherGatewayIps].filter((a) => a.includes(':'));
  L.push(`  set gw-addrs { type ipv4_addr;${elements(gw4)} }`);
  L.push(`  set gw-macs { type ether_addr;${elements([p.lanMac, ...p.otherGatewayMacs].map((m) => m.toLowerCase()))} }`);
  for (const s of COUNTER_SETS) L.push(`  set ${s} { type ipv4_addr; size ${COUNTER_SET_SIZE}; flags dynamic; counter; }`);
  for (const d of ['in', 'out']) L.push(`  set ${d}-meter { type ipv4_addr; size ${COUNTER_SET_SIZE}; flags dynamic,timeout; timeout 60s; }`);
  if (any6) {
    L.push(`  set in-groups6 { type ipv6_addr; flags interval;${elements(of(6).filter(carriesIn).map(single))} }`);
    L.push(
      `  set out-groups6 { type ipv6_addr; flags interval;${elements(
        of(6)
          .filter(carriesOut)
          .map((g) => g.base),
      )} }`,
    );
    L.push(`  set pods6 { type ipv6_addr;${elements(p.pods6 ?? [])} }`);
    L.push(`  set gw-addrs6 { type ipv6_addr;${elements(gw6)} }`);
    for (const s of COUNTER_SETS6) L.push(`  set ${s} { type ipv6_addr; size ${COUNTER_SET_SIZE}; flags dynamic; counter; }`);
    for (const d of ['in', 'out']) L.push(`  set ${d}-meter6 { type ipv6_addr; size ${COUNTER_SET_SIZE}; flags dynamic,timeout; timeout 60s; }`);
  }
  for (const d of ['in', 'out'] as const) for (const r of reasonsOf(p, d)) L.push(`  counter ${dropName(d, r)} { }`);
  // One token bucket per direction for both families: a storm split over IPv4 and IPv6 groups
  // gets the total once.
  if (p.rateTotal > 0) for (const d of ['in', 'out']) L.push(`  limit ${d}-total { rate over ${p.rateTotal}/second burst ${burstFor(p.rateTotal)} packets }`);
  const chains = expectedChains(p);
  const to = (d: Direction, r: AnyDropReason): string => `goto ${dropName(d, r)}`;
  const limit = (d: Direction, f: 4 | 6): string[] => {
    const [daddr, sfx] = f === 6 ? ['ip6 daddr', '6'] : ['ip daddr', ''];
    const out: string[] = [];
    if (p.minTtl > 1) out.push(`${f === 6 ? 'ip6 hoplimit' : 'ip ttl'} < ${p.minTtl} ${to(d, 'ttl')}`);
    if (p.rate > 0) {
      out.push(`update @${d}-meter${sfx} { ${daddr} limit rate over ${p.rate}/second burst ${burstFor(p.rate)} packets } ${to(d, 'rate')}`);
      // The update above does not match when the meter has no room for a new group: without
      // this rule such a group passed unmetered.
      out.push(`${daddr} != @${d}-meter${sfx} ${to(d, 'full')}`);
    }
    if (p.rateTotal > 0) out.push(`limit name "${d}-total" ${to(d, 'total')}`);
    return out;
  };
  /**
   * The drop chains of a direction: `goto` them; `out` never drops, it returns (no copy out).
   * With IPv6 groups each counts the group in the set of its family (an `ip daddr` rule does not
   * match an IPv6 frame: nft adds the protocol check).
   */
  const dropChains = (d: Direction, verdict: 'drop' | 'return'): void => {
    for (const r of reasonsOf(p, d)) {
      const perGroup = (DROP_REASONS as readonly string[]).includes(r) ? [`update @${d}-${r} { ip daddr }`, ...(any6 ? [`update @${d}-${r}6 { ip6 daddr }`] : [])] : [];
      chain(dropName(d, r), undefined, [...perGroup, `counter name "${dropName(d, r)}" ${verdict}`]);
    }
  };
  const chain = (name: string, head: string | undefined, rules: readonly string[]): void => {
    L.push(`  chain ${name} {`);
    if (head) L.push(`    ${head}`);
    for (const r of rules) L.push(`    ${r}`);
    L.push('  }');
  };
  if (chains.has('lan-in')) {
    // The copies to local members and the forward into the VXLAN device, in as many rules as the
    // kernel needs (MAX_DUPS_PER_RULE, src/node/nft.ts): only the last one forwards.
    const targets: string[] = [];
    for (let i = 0; i < Math.max(1, p.members.length); i += MAX_DUPS_PER_RULE) {
      const chunk = p.members.slice(i, i + MAX_DUPS_PER_RULE).map((m) => `dup to "${m}"`);
      targets.push([...chunk, ...(i + MAX_DUPS_PER_RULE >= p.members.length ? [`fwd to "${p.device}"`] : [])].join(' '));
    }
    chain('lan-in', `type filter hook ingress device "${p.lan}" priority ${GATEWAY_PRIORITY}; policy accept;`, [
      ...(chains.has('lan-in6') ? [`${TO_IPV6} goto lan-in6`] : []),
      IPV4_ONLY,
      'ip daddr != @in-groups return',
      'meta l4proto != udp return',
      `ether saddr @gw-macs ${to('in', 'loop')}`,
      `ip saddr @gw-addrs ${to('in', 'loop')}`,
      `ip saddr @pods ${to('in', 'loop')}`,
      ...(p.carried !== undefined ? [`ip length > ${p.carried} ${to('in', 'overlong')}`] : []),
      ...limit('in', 4),
      'update @in-pass { ip daddr }',
      ...targets,
    ]);
    if (chains.has('lan-in6')) {
      // ICMPv6 (Neighbor Discovery to and from this interface, MLD reports and queries, MLDv1
      // reports sent to the group itself) is never UDP: it returns to the node untouched.
      chain('lan-in6', undefined, [
        'ip6 daddr != @in-groups6 return',
        'meta l4proto != udp return',
        `ether saddr @gw-macs ${to('in', 'loop')}`,
        `ip6 saddr @gw-addrs6 ${to('in', 'loop')}`,
        `ip6 saddr @pods6 ${to('in', 'loop')}`,
        // ip6 length is the payload's: the 40-byte header is not in it.
        ...(p.carried !== undefined ? [`ip6 length > ${p.carried - 40} ${to('in', 'overlong')}`] : []),
        ...limit('in', 6),
        'update @in-pass6 { ip6 daddr }',
        ...targets,
      ]);
    }
    dropChains('in', 'drop');
  }
  if (chains.has('out')) {
    chain('out', undefined, [
      ...(chains.has('out6') ? [`${TO_IPV6} goto out6`] : []),
      IPV4_ONLY,
      'ip daddr != @out-groups return',
      'meta l4proto != udp return',
      `ip saddr != @pods ${to('out', 'loop')}`,
      ...limit('out', 4),
      'update @out-pass { ip daddr }',
      `dup to "${p.lan}"`,
    ]);
    if (chains.has('out6')) {
      chain('out6', undefined, [
        'ip6 daddr != @out-groups6 return',
        'meta l4proto != udp return',
        `ip6 saddr != @pods6 ${to('out', 'loop')}`,
        ...limit('out', 6),
        'update @out-pass6 { ip6 daddr }',
        `dup to "${p.lan}"`,
      ]);
    }
    dropChains('out', 'return');
    chain('vx-in', `type filter hook ingress device "${p.delivery}" priority ${GATEWAY_VX_PRIORITY}; policy accept;`, ['jump out']);
    chain('vx-out', `type filter hook egress device "${p.device}" priority ${GATEWAY_VX_PRIORITY}; policy accept;`, ['jump out']);
    if (chains.has('lan-snat')) {
      if (snat4(p) && p.lanIp === '') throw new KmcastError(`gateway: ${p.lan} has no IPv4 address to send the IPv4 groups from`);
      chain('lan-snat', `type filter hook egress device "${p.lan}" priority ${GATEWAY_PRIORITY}; policy accept;`, [
        ...(chains.has('lan-snat6') ? [`${TO_IPV6} goto lan-snat6`] : []),
        ...(snat4(p) ? ['ip daddr != @out-groups return', 'ip saddr != @pods return', `ether saddr set ${p.lanMac.toLowerCase()} ip saddr set ${p.lanIp}`] : []),
      ]);
      if (chains.has('lan-snat6')) {
        // The rewrite fixes the UDP checksum (its pseudo-header holds the source); the later
        // fragments of a fragmented datagram get the same source, so the LAN host reassembles it.
        if (!p.lanIp6) throw new KmcastError(`gateway: ${p.lan} has no global IPv6 address to send the IPv6 groups from`);
        chain('lan-snat6', undefined, ['ip6 daddr != @out-groups6 return', 'ip6 saddr != @pods6 return', `ether saddr set ${p.lanMac.toLowerCase()} ip6 saddr set ${p.lanIp6}`]);
      }
    }
  }
  L.push('}', '');
  return L.join('\n');
}

export function removeGatewayScript(): string {
  return `table netdev ${GATEWAY_TABLE}\ndelete table netdev ${GATEWAY_TABLE}\n`;
}

/** Every device the plane's chains name (hooks, dup and fwd targets), sorted. Pure. */
export function gatewayDevices(p: GatewayPlane): string[] {
  const chains = expectedChains(p);
  const out = new Set<string>();
  if (chains.has('lan-in')) for (const d of [p.lan, p.device, ...p.members]) out.add(d);
  if (chains.has('out')) for (const d of [p.lan, p.device, p.delivery]) out.add(d);
  return [...out].sort();
}

export interface GroupCount {
  readonly packets: number;
  readonly bytes: number;
}

export interface GatewayReadBack {
  /** Chain name -> rules. */
  readonly chains: ReadonlyMap<string, number>;
  /** A dup/fwd target or hook printed as an ifindex: its device is gone. */
  readonly stale: boolean;
  /** Counter set name (in-pass, out-rate, ...) -> group -> count. */
  readonly counters: ReadonlyMap<string, ReadonlyMap<string, GroupCount>>;
  /** Named drop counter (in-drop-rate, ...) -> count: every drop, whether or not a set had room. */
  readonly drops: ReadonlyMap<string, GroupCount>;
}

type Json = Record<string, unknown>;

/** `nft -j list table netdev kmcast-gw` -> chains and counters. Never throws on odd input. */
export function parseGateway(stdout: string): GatewayReadBack {
  const chains = new Map<string, number>();
  const counters = new Map<string, Map<string, GroupCount>>();
  const drops = new Map<string, GroupCount>();
  let stale = false;
  let doc: { nftables?: Json[] };
  try {
    doc = JSON.parse(stdout) as { nftables?: Json[] };
  } catch {
    return { chains, stale, counters, drops };
  }
  const items = Array.isArray(doc.nftables) ? doc.nftables : [];
  for (const o of items) {
    const c = o.chain as Json | undefined;
    if (c && typeof c.name === 'string') {
      chains.set(c.name, 0);
      if (typeof c.dev === 'number' || (typeof c.dev === 'string' && /^\d+$/.test(c.dev))) stale = true;
    }
    const s = o.set as Json | undefined;
    if (s && typeof s.name === 'string' && (COUNTER_SETS.includes(s.name) || COUNTER_SETS6.includes(s.name))) {
      const m = new Map<string, GroupCount>();
      for (const e of Array.isArray(s.elem) ? (s.elem as unknown[]) : []) {
        const el = (e as Json | undefined)?.elem as Json | undefined;
        const val = el?.val;
        const counter = el?.counter as Json | undefined;
        if (typeof val === 'string') m.set(val, { packets: Number(counter?.packets ?? 0), bytes: Number(counter?.bytes ?? 0) });
      }
      counters.set(s.name, m);
    }
    const k = o.counter as Json | undefined;
    if (k && typeof k.name === 'string' && DROP_COUNTERS.includes(k.name)) drops.set(k.name, { packets: Number(k.packets ?? 0), bytes: Number(k.bytes ?? 0) });
  }
  for (const o of items) {
    const r = o.rule as Json | undefined;
    if (!r || typeof r.chain !== 'string' || !chains.has(r.chain)) continue;
    chains.set(r.chain, (chains.get(r.chain) ?? 0) + 1);
    for (const e of (Array.isArray(r.expr) ? r.expr : []) as Json[]) {
      for (const k of ['dup', 'fwd']) {
        if (!(k in e)) continue;
        const t = e[k] as Json | undefined;
        const dev = t?.dev ?? t?.addr;
        if (typeof dev === 'number' || (typeof dev === 'string' && /^\d*$/.test(dev))) stale = true;
      }
    }
  }
  return { chains, stale, counters, drops };
}

/** Why the read-back differs from the plane, or undefined when it matches. Pure. */
export function gatewayMismatch(p: GatewayPlane, back: GatewayReadBack | undefined): string | undefined {
  if (back === undefined) return 'table missing';
  if (back.stale) return 'a chain points at a deleted device';
  const want = expectedChains(p);
  for (const name of back.chains.keys()) if (!want.has(name)) return `unexpected chain ${name}`;
  for (const [name, rules] of want) {
    const have = back.chains.get(name);
    if (have === undefined) return `chain ${name} missing`;
    if (have !== rules) return `chain ${name} has ${have} rules, not ${rules}`;
  }
  return undefined;
}
