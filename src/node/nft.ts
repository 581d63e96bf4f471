/**
 * The node data plane's nftables ruleset: one `netdev` table, replaced atomically in one `nft -f`
 * transaction, and its read-back. Pure: input is the domains with their VXLAN device and local
 * member veths, output is the script; the parser turns `nft -j list table` into the same shape so
 * that "what we want" and "what the kernel has" compare as plain data.
 *
 * Per domain:
 * - `vx-<vni>`: ingress of the domain's VXLAN device. Every decapsulated multicast or limited
 *   broadcast frame (IPv6 multicast but ICMPv6 too) is forwarded into the domain's delivery hop
 *   (src/node/delivery.ts: a bridge whose forwarding leaves the frame with a checksum state a pod
 *   can verify); anything else (unicast, ARP, ICMPv6) is dropped by the chain's policy: a peer
 *   can put only what kmcast carries into a pod, never a unicast frame past the CNI's network
 *   policy, nor a router advertisement. Nothing reaches the node's stack or the CNI.
 * - `dl-<vni>`: ingress of the hop's far end. Each frame is copied out of every local member's
 *   host veth whose MTU holds it (the pod receives it on its own eth0) and then dropped.
 * - `br-<vni>`: ingress of the hop's bridge device, which a bridge hands every flooded frame to:
 *   all dropped, so the node's own stack never hears the domain (not even a socket joined on
 *   every interface, nor limited broadcast).
 * - `cap-<veth>`: ingress of a local member's host veth. Multicast (224.0.0.0/4, and ff00::/8 but
 *   ICMPv6) and limited broadcast the pod sends are copied to every other local member and
 *   forwarded into the domain's VXLAN device (which replicates once per member node from its
 *   FDB/MDB); the node's CNI never sees them. Everything else (unicast, ARP, ICMPv6: Neighbor
 *   Discovery and MLD) passes untouched. Such a datagram whose source is not the member's own IP
 *   (IPv6: its link-local or global addresses; a pod speaking as another member) is dropped first
 *   and counted (the chain's `source` guards): no member ever sees it.
 * Priority -500 runs before any other ingress chain a CNI might install.
 */
import { deliveryDevices } from './delivery.js';

export const NODE_TABLE = 'kmcast-node';
export const NODE_PRIORITY = -500;
/** What a member pod sends that kmcast takes: IPv4 multicast and limited broadcast. */
export const CAPTURE_SET = '{ 224.0.0.0/4, 255.255.255.255 }';
/**
 * And IPv6 multicast, except ICMPv6: Neighbor Discovery (solicited-node, router solicitation and
 * advertisement, ff02::1/ff02::2) and the pod's MLD reports are ICMPv6 to multicast groups, and
 * they must reach the CNI untouched for the pod's own IPv6 to work. Matching the protocol, not the
 * group, also passes MLDv1 reports, which go to the group itself. Every fragment of a UDP datagram
 * carries its transport protocol in the fragment header, so fragmented datagrams are taken whole.
 */
export const CAPTURE6_MATCH = 'ip6 daddr ff00::/8 meta l4proto != 58';
/** IPv6 multicast a member's veth may send from: its link-local (mDNS and SSDP use it) and its global addresses. */
export const LINK_LOCAL6 = 'fe80::/10';
/**
 * The IPv4 source guard of a member with no IPv4 address (an IPv6-only cluster's pod): every
 * IPv4 source is spoofed, so the guard matches them all (`ip saddr 0.0.0.0/0`) and drops them.
 */
export const NO_IPV4 = 'none';
const ANY_IPV4 = '0.0.0.0/0';

/** The member's IPv4 guard source for its pod address `ip`: itself, or NO_IPV4 for an IPv6 address. Pure. */
export function ipv4SourceOf(ip: string): string {
  return ip.includes(':') ? NO_IPV4 : ip;
}

export interface DomainPlane {
  readonly vni: number;
  /** The domain's VXLAN device. */
  readonly device: string;
  /** Host veths of the local members, any order. */
  readonly members: readonly string[];
  /** Host veth -> MTU (the pod's eth0 has the same); a member without one is never limited. */
  readonly mtus?: ReadonlyMap<string, number>;
  /** Host veth -> the member's IPv4 address (NO_IPV4: it has none): what it captures must come from it (no entry: no check). */
  readonly sources?: ReadonlyMap<string, string>;
  /** Host veth -> the member's global IPv6 addresses; with `sources`, its IPv6 captures must come from these or fe80::/10. */
  readonly sources6?: ReadonlyMap<string, readonly string[]>;
  /**
   * On an IPv6 underlay: the longest IP packet a VXLAN copy can carry (underlay MTU - 70; the
   * kernel never fragments VXLAN over IPv6). Capture chains count what is longer (`overlong`).
   */
  readonly carried?: number;
}

/**
 * One rule of a delivery chain: frames whose IP length is at most `max` (undefined: any length
 * left) are copied to `dups`. A veth delivers nothing longer than its MTU (the frame is dropped
 * in the veth), so a frame goes only to the members whose MTU holds it; the rules' counters say
 * how many each member missed (`missedBy`), instead of a silent drop in the veth.
 */
export interface Tier {
  readonly max: number | undefined;
  readonly dups: readonly string[];
}

/** One chain as both the renderer and the parser see it. */
export interface ChainShape {
  readonly name: string;
  /** The rule matches the multicast/broadcast set first (capture and delivery chains alike). */
  readonly capture: boolean;
  /**
   * The chain's policy: capture chains accept (unicast, ARP and IPv6 of the pod pass untouched),
   * delivery chains drop, so only multicast and broadcast a peer node sends ever reach a pod:
   * a unicast frame put into the VXLAN device is not copied to every member.
   */
  readonly policy: 'accept' | 'drop';
  /** dup targets, in order. */
  readonly dups: readonly string[];
  /** fwd target (capture chains). */
  readonly fwd: string | undefined;
  /** Ends in drop (delivery chains). */
  readonly drop: boolean;
  /** Delivery chains: one rule per tier, shortest first (`dups` is the first tier's). */
  readonly tiers?: readonly Tier[];
  /**
   * Capture chains: the member's IP. A first rule drops (and counts) captured datagrams with any
   * other source address, so a member cannot speak as another one. NO_IPV4: the member has no
   * IPv4 address, and the rule drops (and counts) every IPv4 datagram it captures.
   */
  readonly source?: string;
  /**
   * Capture chains with a source guard: the IPv6 sources allowed, `fe80::/10` first, then the
   * member's global addresses sorted (a second guard rule drops and counts the rest).
   */
  readonly source6?: readonly string[];
  /**
   * Capture chains on an IPv6 underlay: the longest IP packet the underlay carries. A counter
   * rule per family (no verdict) counts longer frames: their local copies are delivered, their
   * VXLAN copy is refused by the kernel (Ip6FragFails), and this count says whose they were.
   */
  readonly overlong?: number;
}

/** The comment of the rules that count frames too long for an IPv6 underlay. */
export const OVERLONG_COMMENT = 'kmcast-overlong';

export interface ChainSpec extends ChainShape {
  /** The device the chain's ingress hook is bound to. */
  readonly device: string;
}

export const vxChainName = (vni: number): string => `vx-${vni}`;
export const deliveryChainName = (vni: number): string => `dl-${vni}`;
export const bridgeChainName = (vni: number): string => `br-${vni}`;
export const captureChainName = (veth: string): string => `cap-${veth}`;

const byName = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

/**
 * The delivery tiers for `members` (sorted): one per distinct member MTU, ascending, to the
 * members that hold it, then the rest (any length) to the members of unknown MTU. Pure.
 */
export function deliveryTiers(members: readonly string[], mtus: ReadonlyMap<string, number> | undefined): Tier[] {
  const known = [...new Set(members.map((m) => mtus?.get(m)).filter((x): x is number => x !== undefined))].sort((a, b) => a - b);
  const fits = (m: string, max: number): boolean => (mtus?.get(m) ?? Infinity) >= max;
  return [...known.map((max) => ({ max, dups: members.filter((m) => fits(m, max)) })), { max: undefined, dups: members.filter((m) => mtus?.get(m) === undefined) }];
}

/** Frames the delivery chain `dl` counted but did not copy to `veth` (longer than its MTU). Pure. */
export function missedBy(dl: ReadChain, veth: string): number {
  if (!dl.tiers.some((t) => t.dups.includes(veth))) return 0; // not a member of this chain
  const missed = (tiers: readonly ReadTier[]): number => tiers.filter((t) => !t.dups.includes(veth)).reduce((n, t) => n + t.packets, 0);
  return missed(dl.tiers) + missed(dl.v6?.tiers ?? []);
}

/** Frames the delivery chain `dl` copied to no member at all: longer than every member's MTU. Pure. */
export function missedByAll(dl: ReadChain): number {
  return [...dl.tiers, ...(dl.v6?.tiers ?? [])].filter((t) => t.dups.length === 0).reduce((n, t) => n + t.packets, 0);
}

/**
 * The chains for `domains`, in a deterministic order (domains by VNI, members by name). A veth
 * listed by two domains belongs to the one with the lower VNI: a pod has one eth0, and only one
 * capture chain can forward a frame.
 */
export function desiredChains(domains: readonly DomainPlane[]): ChainSpec[] {
  const out: ChainSpec[] = [];
  const claimed = new Set<string>();
  for (const d of [...domains].sort((a, b) => a.vni - b.vni)) {
    const members = [...new Set(d.members)].filter((m) => !claimed.has(m)).sort(byName);
    for (const m of members) claimed.add(m);
    const hop = deliveryDevices(d.vni);
    out.push({ name: vxChainName(d.vni), device: d.device, capture: true, policy: 'drop', dups: [], fwd: hop.in, drop: false });
    const tiers = deliveryTiers(members, d.mtus);
    out.push({ name: deliveryChainName(d.vni), device: hop.recv, capture: true, policy: 'drop', dups: tiers[0]!.dups, fwd: undefined, drop: true, tiers });
    out.push({ name: bridgeChainName(d.vni), device: hop.bridge, capture: false, policy: 'drop', dups: [], fwd: undefined, drop: true });
    for (const m of members) {
      const source = d.sources?.get(m);
      const source6 = source ? [LINK_LOCAL6, ...[...new Set(d.sources6?.get(m) ?? [])].sort()] : undefined;
      out.push({
        name: captureChainName(m),
        device: m,
        capture: true,
        policy: 'accept',
        dups: members.filter((o) => o !== m),
        fwd: d.device,
        drop: false,
        ...(source ? { source } : {}),
        ...(source6 ? { source6 } : {}),
        ...(d.carried !== undefined ? { overlong: d.carried } : {}),
      });
    }
  }
  return out;
}

/**
 * `dup to` targets per nftables rule at most. The kernel takes at most 128 expressions per rule
 * (NFT_RULE_MAXEXPRS) and each `dup to` is two of them: one rule held 60 members, and the 61st
 * made the whole ruleset fail (EINVAL). A longer list is carried by consecutive rules with the
 * same match, only the last ending the rule (fwd or drop), only the first counting.
 */
export const MAX_DUPS_PER_RULE = 48;

/**
 * The rule lines of one logical rule (a tier, or the chain's only rule) for one family. An IPv6
 * tier's bound is the same frame size: `ip6 length` is the payload, 40 bytes short of it.
 */
function ruleLines(c: ChainShape, tier: Tier | undefined, family: 4 | 6): string[] {
  const match: string[] = [];
  if (c.capture) match.push(family === 4 ? `ip daddr ${CAPTURE_SET}` : CAPTURE6_MATCH);
  if (tier?.max !== undefined) match.push(family === 4 ? `ip length <= ${tier.max}` : `ip6 length <= ${tier.max - 40}`);
  const dups = tier ? tier.dups : c.dups;
  const chunks: (readonly string[])[] = [];
  for (let i = 0; i < dups.length; i += MAX_DUPS_PER_RULE) chunks.push(dups.slice(i, i + MAX_DUPS_PER_RULE));
  if (chunks.length === 0) chunks.push([]);
  return chunks.map((chunk, i) => {
    const parts = [...match];
    if (i === 0) parts.push('counter');
    for (const d of chunk) parts.push(`dup to "${d}"`);
    if (i === chunks.length - 1) {
      if (c.fwd !== undefined) parts.push(`fwd to "${c.fwd}"`);
      if (c.drop) parts.push('drop');
    }
    return parts.join(' ');
  });
}

/** The `nft -f -` script: declare, delete, recreate: one atomic replace of the whole table. */
export function renderRuleset(chains: readonly ChainSpec[]): string {
  const lines = [`table netdev ${NODE_TABLE}`, `delete table netdev ${NODE_TABLE}`, `table netdev ${NODE_TABLE} {`];
  for (const c of chains) {
    lines.push(
      `  chain ${c.name} {`,
      `    type filter hook ingress device "${c.device}" priority ${NODE_PRIORITY}; policy ${c.policy};`,
      ...(c.source ? [c.source === NO_IPV4 ? `    ip daddr ${CAPTURE_SET} ip saddr ${ANY_IPV4} counter drop` : `    ip daddr ${CAPTURE_SET} ip saddr != ${c.source} counter drop`] : []),
      ...(c.source6 ? [`    ${CAPTURE6_MATCH} ip6 saddr != { ${c.source6.join(', ')} } counter drop`] : []),
      ...(c.overlong !== undefined
        ? [`    ip daddr ${CAPTURE_SET} ip length > ${c.overlong} counter comment "${OVERLONG_COMMENT}"`, `    ${CAPTURE6_MATCH} ip6 length > ${c.overlong - 40} counter comment "${OVERLONG_COMMENT}"`]
        : []),
      ...(c.tiers ? c.tiers.flatMap((t) => ruleLines(c, t, 4)) : ruleLines(c, undefined, 4)).map((l) => `    ${l}`),
      // IPv6 rules only where the IPv4 rule matches multicast: the bridge chain drops every frame in one rule.
      ...(c.capture ? (c.tiers ? c.tiers.flatMap((t) => ruleLines(c, t, 6)) : ruleLines(c, undefined, 6)) : []).map((l) => `    ${l}`),
      '  }',
    );
  }
  lines.push('}', '');
  return lines.join('\n');
}

/** The script that removes the table (nothing else on the node is touched). */
export function removeScript(): string {
  return `table netdev ${NODE_TABLE}\ndelete table netdev ${NODE_TABLE}\n`;
}

export interface ReadTier extends Tier {
  readonly packets: number;
}

/** The rules of one family in a chain, folded into logical rules (tiers). */
export interface ReadRules {
  /** The first rule matches the family's multicast capture set. */
  readonly capture: boolean;
  /** The first rule's dup targets, fwd target and drop. */
  readonly dups: readonly string[];
  readonly fwd: string | undefined;
  readonly drop: boolean;
  /** Packets counted by the family's rules. */
  readonly packets: number;
  /** Logical rules. */
  readonly rules: number;
  /** Every logical rule as a tier (its length bound, dups and counter), in order. */
  readonly tiers: readonly ReadTier[];
  /** A dup/fwd target printed as an ifindex (its device is gone), or a rule we do not write. */
  readonly stale: boolean;
}

export interface ReadChain extends Omit<ChainShape, 'tiers'>, ReadRules {
  /** Datagrams the source guards dropped (capture chains; 0 without one). */
  readonly spoofed: number;
  /** Frames the overlong rules counted: too long for the IPv6 underlay (0 without them). */
  readonly overlongPackets: number;
  /** The IPv6 rules (absent: the chain has none). */
  readonly v6?: ReadRules;
}

type Json = Record<string, unknown>;

const EMPTY_RULES: ReadRules = { capture: false, dups: [], fwd: undefined, drop: false, packets: 0, rules: 0, tiers: [], stale: false };

/** One rule's expressions as a piece of a logical rule. */
interface RulePiece {
  readonly family: 4 | 6;
  readonly capture: boolean;
  readonly max: number | undefined;
  readonly dups: string[];
  readonly fwd: string | undefined;
  readonly drop: boolean;
  readonly packets: number;
  readonly stale: boolean;
}

function readPiece(exprs: readonly Json[]): RulePiece {
  const dups: string[] = [];
  let fwd: string | undefined;
  let drop = false;
  let family: 4 | 6 = 4;
  let v4set = false;
  let v6set = false;
  let noIcmp6 = false;
  let packets = 0;
  let max: number | undefined;
  let stale = false;
  const target = (x: unknown): string => {
    const v = x as Json | undefined;
    const name = v?.dev ?? v?.addr;
    const str = typeof name === 'string' ? name : typeof name === 'number' ? String(name) : '';
    if (/^\d*$/.test(str)) stale = true;
    return str;
  };
  for (const e of exprs) {
    const text = 'match' in e ? JSON.stringify(e.match) : '';
    if ('match' in e && text.includes('"field":"length"')) {
      const m = e.match as Json;
      const v6 = text.includes('"protocol":"ip6"');
      if (m.op === '<=' && typeof m.right === 'number') max = m.right + (v6 ? 40 : 0);
      else stale = true; // not a bound we write: reinstall
    } else if ('match' in e && text.includes('"protocol":"ip6"') && text.includes('"field":"daddr"')) {
      family = 6;
      v6set = (e.match as Json).op === '==' && text.includes('"addr":"ff00::","len":8');
    } else if ('match' in e && text.includes('"key":"l4proto"')) {
      const right = (e.match as Json).right;
      noIcmp6 = (e.match as Json).op === '!=' && (right === 'ipv6-icmp' || right === 58);
    } else if ('match' in e) v4set = text.includes('224.0.0.0') && text.includes('255.255.255.255');
    else if ('counter' in e) packets = Number((e.counter as Json | undefined)?.packets ?? 0);
    else if ('dup' in e) dups.push(target(e.dup));
    else if ('fwd' in e) fwd = target(e.fwd);
    else if ('drop' in e) drop = true;
  }
  return { family, capture: family === 6 ? v6set && noIcmp6 : v4set, max, dups, fwd, drop, packets, stale };
}

/** The addresses of a guard's right side: one address, or a set of addresses and prefixes. */
function guardAddresses(right: unknown): string[] | undefined {
  if (typeof right === 'string') return [right];
  // nft prints a one-element set as its element.
  const set = (right as Json | undefined)?.prefix !== undefined ? [right] : (right as Json | undefined)?.set;
  if (!Array.isArray(set)) return undefined;
  const out: string[] = [];
  for (const x of set as unknown[]) {
    if (typeof x === 'string') out.push(x);
    else {
      const p = (x as Json).prefix as Json | undefined;
      if (typeof p?.addr !== 'string' || typeof p.len !== 'number') return undefined;
      out.push(`${p.addr}/${p.len}`);
    }
  }
  return out.sort();
}

/** `nft -j list table netdev kmcast-node` -> chains by name. Pure; never throws on odd input. */
export function parseRuleset(stdout: string): Map<string, ReadChain> {
  const out = new Map<string, ReadChain>();
  let doc: { nftables?: Json[] };
  try {
    doc = JSON.parse(stdout) as { nftables?: Json[] };
  } catch {
    return out;
  }
  const items = Array.isArray(doc.nftables) ? doc.nftables : [];
  const policies = new Map<string, 'accept' | 'drop'>();
  for (const o of items) {
    const c = o.chain as Json | undefined;
    if (c && typeof c.name === 'string') policies.set(c.name, c.policy === 'drop' ? 'drop' : 'accept');
  }
  const rules = new Map<string, ReadRules>();
  const partial = new Map<string, RulePiece>();
  const guards = new Map<string, { source?: string; source6?: string[]; spoofed: number; stale: boolean }>();
  const overlongs = new Map<string, { max4?: number; max6?: number; packets: number; stale: boolean }>();
  const add = (key: string, merged: RulePiece): void => {
    const prev = rules.get(key) ?? EMPTY_RULES;
    const first = prev.rules === 0;
    rules.set(key, {
      capture: first ? merged.capture : prev.capture && merged.capture,
      dups: first ? merged.dups : prev.dups,
      fwd: first ? merged.fwd : prev.fwd,
      drop: first ? merged.drop : prev.drop && merged.drop,
      packets: prev.packets + merged.packets,
      rules: prev.rules + 1,
      stale: merged.stale || prev.stale,
      tiers: [...prev.tiers, { max: merged.max, dups: merged.dups, packets: merged.packets }],
    });
  };
  for (const o of items) {
    const r = o.rule as Json | undefined;
    if (!r || typeof r.chain !== 'string' || !policies.has(r.chain)) continue;
    const exprs = (Array.isArray(r.expr) ? r.expr : []) as Json[];
    if (r.comment === OVERLONG_COMMENT) {
      // `<family match> length > N counter`: counts, decides nothing. Its bound is the IP packet's
      // (ip6 length is the payload: 40 more).
      const len = exprs.find((e) => 'match' in e && JSON.stringify((e.match as Json).left).includes('"field":"length"'))?.match as Json | undefined;
      const v6 = JSON.stringify(len?.left ?? '').includes('"protocol":"ip6"');
      const ok = len?.op === '>' && typeof len.right === 'number' && !exprs.some((e) => 'drop' in e || 'fwd' in e || 'dup' in e || 'accept' in e);
      const o = overlongs.get(r.chain) ?? { packets: 0, stale: false };
      const bound = ok ? (len.right as number) + (v6 ? 40 : 0) : undefined;
      overlongs.set(r.chain, {
        ...o,
        ...(bound === undefined ? {} : v6 ? { max6: bound } : { max4: bound }),
        stale: o.stale || !ok,
        packets: o.packets + Number(((exprs.find((e) => 'counter' in e)?.counter as Json | undefined)?.packets as number | undefined) ?? 0),
      });
      continue;
    }
    const guard = exprs.find((e) => 'match' in e && JSON.stringify((e.match as Json).left).includes('"field":"saddr"'));
    if (guard) {
      // A capture chain's source guard: `ip saddr != <member IP> counter drop`, or the IPv6 one
      // with a set of allowed sources.
      const m = guard.match as Json;
      const v6 = JSON.stringify(m.left).includes('"protocol":"ip6"');
      const counter = exprs.find((e) => 'counter' in e);
      const addrs = guardAddresses(m.right);
      // `ip saddr 0.0.0.0/0 ... drop`: the guard of a member without IPv4 (NO_IPV4).
      const noIpv4 = !v6 && m.op === '==' && addrs?.join() === ANY_IPV4;
      const ok = (noIpv4 || m.op === '!=') && addrs !== undefined && (v6 || addrs.length === 1) && exprs.some((e) => 'drop' in e);
      const g = guards.get(r.chain) ?? { spoofed: 0, stale: false };
      guards.set(r.chain, {
        ...g,
        ...(ok && !v6 ? { source: noIpv4 ? NO_IPV4 : addrs[0]! } : {}),
        ...(ok && v6 ? { source6: addrs } : {}),
        stale: g.stale || !ok,
        spoofed: g.spoofed + Number((counter?.counter as Json | undefined)?.packets ?? 0),
      });
      continue;
    }
    const piece = readPiece(exprs);
    const key = `${r.chain}\u0000${piece.family}`;
    // A rule that neither forwards nor drops continues in the next one (a long dup list split
    // over rules, MAX_DUPS_PER_RULE): fold it into the logical rule the next one ends.
    const open = partial.get(key);
    const merged: RulePiece = open
      ? {
          ...piece,
          max: open.max,
          dups: [...open.dups, ...piece.dups],
          packets: open.packets + piece.packets,
          capture: open.capture && piece.capture,
          stale: open.stale || piece.stale || open.max !== piece.max,
        }
      : piece;
    if (!piece.fwd && !piece.drop) {
      partial.set(key, merged);
      continue;
    }
    partial.delete(key);
    add(key, merged);
  }
  // A rule left open (its chain ended without fwd or drop) is not one we write: reinstall.
  for (const [key, p] of partial) add(key, { ...p, stale: true });
  for (const [name, policy] of policies) {
    const v4 = rules.get(`${name}\u00004`) ?? EMPTY_RULES;
    const v6 = rules.get(`${name}\u00006`);
    const g = guards.get(name);
    const o = overlongs.get(name);
    // Both families' rules with one bound; anything else (one family, two bounds, a verdict) is
    // not a table kmcast writes: stale, reinstalled.
    const overlong = o && o.max4 !== undefined && o.max4 === o.max6 ? o.max4 : undefined;
    out.set(name, {
      name,
      policy,
      ...v4,
      stale: v4.stale || (g?.stale ?? false) || (o !== undefined && (o.stale || overlong === undefined)),
      spoofed: g?.spoofed ?? 0,
      overlongPackets: o?.packets ?? 0,
      ...(overlong !== undefined ? { overlong } : {}),
      ...(g?.source !== undefined ? { source: g.source } : {}),
      ...(g?.source6 !== undefined ? { source6: g.source6 } : {}),
      ...(v6 ? { v6 } : {}),
    });
  }
  return out;
}

/** Why the read-back differs from `want`, or undefined when it matches exactly. */
export function rulesetMismatch(want: readonly ChainSpec[], have: ReadonlyMap<string, ReadChain>): string | undefined {
  const names = new Set(want.map((c) => c.name));
  for (const name of have.keys()) if (!names.has(name)) return `unexpected chain ${name}`;
  for (const c of want) {
    const h = have.get(c.name);
    if (!h) return `chain ${c.name} missing`;
    const tiers = c.tiers ?? [{ max: undefined, dups: c.dups }];
    if (h.rules !== tiers.length) return `chain ${c.name} has ${h.rules} rules, not ${tiers.length}`;
    if (h.stale) return `chain ${c.name} points at a deleted device or holds a rule kmcast does not write`;
    if (h.capture !== c.capture || h.policy !== c.policy || h.drop !== c.drop || h.fwd !== c.fwd || h.dups.join() !== c.dups.join() || h.source !== c.source) {
      return `chain ${c.name} differs: ${JSON.stringify({ capture: h.capture, policy: h.policy, dups: h.dups, fwd: h.fwd, drop: h.drop, source: h.source })}`;
    }
    if ([...(h.source6 ?? [])].sort().join() !== [...(c.source6 ?? [])].sort().join()) return `chain ${c.name} IPv6 sources differ: ${JSON.stringify(h.source6 ?? null)}`;
    if (h.overlong !== c.overlong) return `chain ${c.name} counts frames over ${JSON.stringify(h.overlong ?? null)}, not ${JSON.stringify(c.overlong ?? null)}`;
    for (const [i, t] of tiers.entries()) {
      const ht = h.tiers[i]!;
      if (ht.max !== t.max || ht.dups.join() !== t.dups.join()) return `chain ${c.name} rule ${i + 1} differs: ${JSON.stringify({ max: ht.max ?? null, dups: ht.dups })}`;
    }
    // The IPv6 rules mirror the IPv4 ones in chains that capture, and do not exist elsewhere.
    const v6 = h.v6;
    if (!c.capture) {
      if (v6 !== undefined) return `chain ${c.name} has IPv6 rules`;
      continue;
    }
    if (v6 === undefined) return `chain ${c.name} has no IPv6 rules`;
    if (v6.stale) return `chain ${c.name}'s IPv6 rules point at a deleted device`;
    if (v6.rules !== tiers.length || !v6.capture || v6.drop !== c.drop || v6.fwd !== c.fwd)
      return `chain ${c.name} IPv6 rules differ: ${JSON.stringify({ rules: v6.rules, capture: v6.capture, fwd: v6.fwd, drop: v6.drop })}`;
    for (const [i, t] of tiers.entries()) {
      const ht = v6.tiers[i]!;
      if (ht.max !== t.max || ht.dups.join() !== t.dups.join()) return `chain ${c.name} IPv6 rule ${i + 1} differs: ${JSON.stringify({ max: ht.max ?? null, dups: ht.dups })}`;
    }
  }
  return undefined;
}
