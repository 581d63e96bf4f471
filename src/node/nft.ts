/**
 * The node data plane's nftables ruleset: one `netdev` table, replaced atomically in one `nft -f`
 * transaction, and its read-back. Pure: input is the domains with their VXLAN device and local
 * member veths, output is the script; the parser turns `nft -j list table` into the same shape so
 * that "what we want" and "what the kernel has" compare as plain data.
 *
 * Per domain:
 * - `vx-<vni>`: ingress of the domain's VXLAN device. Every decapsulated multicast or limited
 *   broadcast frame is forwarded into the domain's delivery hop (src/node/delivery.ts: a bridge
 *   whose forwarding leaves the frame with a checksum state a pod can verify); anything else
 *   (unicast, ARP, IPv6) is dropped by the chain's policy: a peer can put only what kmcast
 *   carries into a pod, never a unicast frame past the CNI's network policy. Nothing reaches
 *   the node's stack or the CNI.
 * - `dl-<vni>`: ingress of the hop's far end. Each frame is copied out of every local member's
 *   host veth whose MTU holds it (the pod receives it on its own eth0) and then dropped.
 * - `br-<vni>`: ingress of the hop's bridge device, which a bridge hands every flooded frame to:
 *   all dropped, so the node's own stack never hears the domain (not even a socket joined on
 *   every interface, nor limited broadcast).
 * - `cap-<veth>`: ingress of a local member's host veth. Multicast (224.0.0.0/4) and limited
 *   broadcast the pod sends are copied to every other local member and forwarded into the
 *   domain's VXLAN device (which replicates once per member node from its FDB/MDB); the node's
 *   CNI never sees them. Everything else (unicast, ARP, IPv6) passes untouched. Such a datagram
 *   whose source is not the member's own IP (a pod with NET_RAW speaking as another member) is
 *   dropped first and counted (the chain's `source` guard): no member ever sees it.
 * Priority -500 runs before any other ingress chain a CNI might install.
 */
import { deliveryDevices } from './delivery.js';

export const NODE_TABLE = 'kmcast-node';
export const NODE_PRIORITY = -500;
/** What a member pod sends that kmcast takes: IPv4 multicast and limited broadcast. */
export const CAPTURE_SET = '{ 224.0.0.0/4, 255.255.255.255 }';

export interface DomainPlane {
  readonly vni: number;
  /** The domain's VXLAN device. */
  readonly device: string;
  /** Host veths of the local members, any order. */
  readonly members: readonly string[];
  /** Host veth -> MTU (the pod's eth0 has the same); a member without one is never limited. */
  readonly mtus?: ReadonlyMap<string, number>;
  /** Host veth -> the member's IP: what it captures must come from it (no entry: no check). */
  readonly sources?: ReadonlyMap<string, string>;
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
   * other source address, so a member cannot speak as another one.
   */
  readonly source?: string;
}

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
  return dl.tiers.filter((t) => !t.dups.includes(veth)).reduce((n, t) => n + t.packets, 0);
}

/** Frames the delivery chain `dl` copied to no member at all: longer than every member's MTU. Pure. */
export function missedByAll(dl: ReadChain): number {
  return dl.tiers.filter((t) => t.dups.length === 0).reduce((n, t) => n + t.packets, 0);
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
      out.push({ name: captureChainName(m), device: m, capture: true, policy: 'accept', dups: members.filter((o) => o !== m), fwd: d.device, drop: false, ...(source ? { source } : {}) });
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

/** The rule lines of one logical rule (a tier, or the chain's only rule). */
function ruleLines(c: ChainShape, tier?: Tier): string[] {
  const match: string[] = [];
  if (c.capture) match.push(`ip daddr ${CAPTURE_SET}`);
  if (tier?.max !== undefined) match.push(`ip length <= ${tier.max}`);
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
      ...(c.source ? [`    ip daddr ${CAPTURE_SET} ip saddr != ${c.source} counter drop`] : []),
      ...(c.tiers ? c.tiers.flatMap((t) => ruleLines(c, t)) : ruleLines(c)).map((l) => `    ${l}`),
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

export interface ReadChain extends ChainShape {
  /** Packets counted by the chain's rules. */
  readonly packets: number;
  /** Rules in the chain (we install one, or one per tier). */
  readonly rules: number;
  /** Every rule as a tier (its `ip length <=` bound, dups and counter), in order. */
  readonly tiers: readonly ReadTier[];
  /** A dup/fwd target printed as an ifindex: its device is gone, the rule is stale. */
  readonly stale: boolean;
  /** Datagrams the source guard dropped (capture chains; 0 without one). */
  readonly spoofed: number;
}

type Json = Record<string, unknown>;

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
  for (const o of items) {
    const c = o.chain as Json | undefined;
    if (c && typeof c.name === 'string') {
      out.set(c.name, {
        name: c.name,
        capture: false,
        policy: c.policy === 'drop' ? 'drop' : 'accept',
        dups: [],
        fwd: undefined,
        drop: false,
        packets: 0,
        rules: 0,
        stale: false,
        tiers: [],
        spoofed: 0,
      });
    }
  }
  const partial = new Map<string, { max: number | undefined; dups: string[]; packets: number; capture: boolean; stale: boolean }>();
  for (const o of items) {
    const r = o.rule as Json | undefined;
    if (!r || typeof r.chain !== 'string') continue;
    const prev = out.get(r.chain);
    if (!prev) continue;
    const exprs = (Array.isArray(r.expr) ? r.expr : []) as Json[];
    const guard = exprs.find((e) => 'match' in e && JSON.stringify((e.match as Json).left).includes('"field":"saddr"'));
    if (guard) {
      // The capture chain's source guard: `ip saddr != <member IP> counter drop`.
      const m = guard.match as Json;
      const counter = exprs.find((e) => 'counter' in e);
      const ok = m.op === '!=' && typeof m.right === 'string' && exprs.some((e) => 'drop' in e);
      out.set(r.chain, {
        ...prev,
        ...(ok ? { source: m.right as string } : {}),
        stale: prev.stale || !ok,
        spoofed: prev.spoofed + Number((counter?.counter as Json | undefined)?.packets ?? 0),
      });
      continue;
    }
    const dups: string[] = [];
    let fwd: string | undefined;
    let drop = false;
    let capture = false;
    let packets = 0;
    let max: number | undefined;
    let stale = false;
    const target = (x: unknown): string => {
      const v = x as Json | undefined;
      const name = v?.dev ?? v?.addr;
      const s = typeof name === 'string' ? name : typeof name === 'number' ? String(name) : '';
      if (/^\d*$/.test(s)) stale = true;
      return s;
    };
    for (const e of exprs) {
      if ('match' in e && JSON.stringify(e.match).includes('"field":"length"')) {
        const m = e.match as Json;
        if (m.op === '<=' && typeof m.right === 'number') max = m.right;
        else stale = true; // not a bound we write: reinstall
      } else if ('match' in e) capture = JSON.stringify(e.match).includes('224.0.0.0') && JSON.stringify(e.match).includes('255.255.255.255');
      else if ('counter' in e) packets = Number((e.counter as Json | undefined)?.packets ?? 0);
      else if ('dup' in e) dups.push(target(e.dup));
      else if ('fwd' in e) fwd = target(e.fwd);
      else if ('drop' in e) drop = true;
    }
    // A rule that neither forwards nor drops continues in the next one (a long dup list split
    // over rules, MAX_DUPS_PER_RULE): fold it into the logical rule the next one ends.
    const open = partial.get(r.chain);
    const merged = open
      ? { max: open.max, dups: [...open.dups, ...dups], packets: open.packets + packets, capture: open.capture && capture, stale: open.stale || stale || open.max !== max }
      : { max, dups, packets, capture, stale };
    if (!fwd && !drop) {
      partial.set(r.chain, merged);
      continue;
    }
    partial.delete(r.chain);
    const tiers = [...prev.tiers, { max: merged.max, dups: merged.dups, packets: merged.packets }];
    const first = prev.rules === 0;
    out.set(r.chain, {
      ...prev,
      capture: first ? merged.capture : prev.capture && merged.capture,
      dups: first ? merged.dups : prev.dups,
      fwd: first ? fwd : prev.fwd,
      drop: first ? drop : prev.drop && drop,
      packets: prev.packets + merged.packets,
      rules: prev.rules + 1,
      stale: merged.stale || prev.stale,
      tiers,
    });
  }
  // A rule left open (its chain ended without fwd or drop) is not one we write: reinstall.
  for (const [name, p] of partial) {
    const prev = out.get(name)!;
    out.set(name, { ...prev, stale: true, rules: prev.rules + 1, tiers: [...prev.tiers, { max: p.max, dups: p.dups, packets: p.packets }], packets: prev.packets + p.packets });
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
    if (h.stale) return `chain ${c.name} points at a deleted device`;
    if (h.capture !== c.capture || h.policy !== c.policy || h.drop !== c.drop || h.fwd !== c.fwd || h.dups.join() !== c.dups.join() || h.source !== c.source) {
      return `chain ${c.name} differs: ${JSON.stringify({ capture: h.capture, policy: h.policy, dups: h.dups, fwd: h.fwd, drop: h.drop, source: h.source })}`;
    }
    for (const [i, t] of tiers.entries()) {
      const ht = h.tiers[i]!;
      if (ht.max !== t.max || ht.dups.join() !== t.dups.join()) return `chain ${c.name} rule ${i + 1} differs: ${JSON.stringify({ max: ht.max ?? null, dups: ht.dups })}`;
    }
  }
  return undefined;
}
