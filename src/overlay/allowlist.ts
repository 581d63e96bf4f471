/**
 * Admission allow-list: only current peers may send VXLAN (and, without a key, control) datagrams
 * to this pod. nftables in the pod's own namespace, replaced atomically in one transaction and
 * read back after every change: an overlay filter that silently failed to install left VXLAN
 * open in Moby (CVE-2023-28840), so a filter we cannot verify is an error, never a warning.
 */
import { CapabilityError, KmcastError } from '../errors.js';
import { NftClient } from '../kernel/nft.js';
import type { Runner } from '../kernel/runner.js';
import { sortIpv4 } from '../net/ipv4.js';
import type { CaptureSpec, CaptureState } from './capture.js';
import { captureMatches, captureScript, nftError, readCapture, removeCapture } from './capture.js';

export const NFT_TABLE = 'kmcast';
/** The comment (and drop counter name) of the node's "overlay ports only from the underlay" rule. */
export const GUARD_RULE = 'kmcast-not-underlay';

export interface AllowListSpec {
  readonly vxlanPort: number;
  /** Filter the control port too (no key: only peers' source addresses are believed anyway). */
  readonly controlPort: number | undefined;
  readonly peers: readonly string[];
  /**
   * Node mode: the underlay interface and the overlay and control ports. Datagrams to those ports
   * are then taken only from the underlay
   * (and lo): whatever arrives on any other interface (a pod's host veth or the node bridge, a
   * gateway's LAN interface) is dropped in prerouting, before the CNI can masquerade a pod's
   * datagram to the node's own address (which every peer believes). See `GUARD_RULE`.
   */
  readonly guard?: { readonly underlay: string; readonly ports: readonly number[] } | undefined;
  /** The eth0 capture chain (capture.ts), written in the same transaction and read back with the list. */
  readonly capture?: CaptureSpec | undefined;
  /**
   * The underlay's family (default `ip`): node mode on an IPv6 underlay gets its VXLAN and control
   * datagrams over IPv6, so the same table is written in the `ip6` family, peers as IPv6 addresses.
   */
  readonly family?: AllowListFamily;
}

export type AllowListFamily = 'ip' | 'ip6';

/** The nft script for `nft -f -`: create-then-delete-then-create makes it one atomic replace. */
export function allowListScript(spec: AllowListSpec): string {
  const family = spec.family ?? 'ip';
  const peers = sortIpv4(new Set(spec.peers));
  const elements = peers.length ? ` elements = { ${peers.join(', ')} }` : '';
  const rules = [`    udp dport ${spec.vxlanPort} ${family} saddr != @peers counter drop comment "kmcast-vxlan"`];
  if (spec.controlPort !== undefined) {
    rules.push(`    udp dport ${spec.controlPort} ${family} saddr != @peers counter drop comment "kmcast-control"`);
  }
  const guard: string[] = [];
  if (spec.guard !== undefined) {
    const ports = [...new Set(spec.guard.ports)].sort((a, b) => a - b);
    // Prerouting at raw priority: before conntrack and NAT, for forwarded and local traffic alike.
    guard.push(
      '  chain prerouting {',
      '    type filter hook prerouting priority -300; policy accept;',
      `    iifname != { "${spec.guard.underlay}", "lo" } udp dport { ${ports.join(', ')} } counter drop comment "${GUARD_RULE}"`,
      '  }',
    );
  }
  return [
    `table ${family} ${NFT_TABLE}`,
    `delete table ${family} ${NFT_TABLE}`,
    `table ${family} ${NFT_TABLE} {`,
    `  set peers { type ${family === 'ip' ? 'ipv4_addr' : 'ipv6_addr'};${elements} }`,
    '  chain input {',
    '    type filter hook input priority -150; policy accept;',
    ...rules,
    '  }',
    ...guard,
    '}',
    ...(spec.capture ? captureScript(spec.capture) : []),
    '',
  ].join('\n');
}

/** Replaces only the set's elements, in one transaction: the rules and their drop counters stay. */
export function allowListUpdateScript(peers: readonly string[], family: AllowListFamily = 'ip'): string {
  const sorted = sortIpv4(new Set(peers));
  return `flush set ${family} ${NFT_TABLE} peers\n${sorted.length ? `add element ${family} ${NFT_TABLE} peers { ${sorted.join(', ')} }\n` : ''}`;
}

function expectedRules(spec: AllowListSpec): string[] {
  const rules = spec.controlPort === undefined ? ['kmcast-vxlan'] : ['kmcast-vxlan', 'kmcast-control'];
  return spec.guard === undefined ? rules : [...rules, GUARD_RULE];
}

/**
 * Drop counters by reason, as /status and the metrics name them: `not_peer` (VXLAN from an address
 * that is no peer), `control_not_peer`, `not_underlay` (the overlay or control port reached from a
 * pod or any interface but the underlay). Pure.
 */
export function allowListDrops(dropped: Readonly<Record<string, number>>): Record<string, number> {
  const names: Record<string, string> = { 'kmcast-vxlan': 'not_peer', 'kmcast-control': 'control_not_peer', [GUARD_RULE]: 'not_underlay' };
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(dropped)) out[names[k] ?? k] = v;
  return out;
}

/** The guard rule as read back names the spec's underlay and every one of its ports. Pure. */
export function guardMatches(state: AllowListState | undefined, spec: AllowListSpec): boolean {
  if (spec.guard === undefined) return true;
  const text = state?.guard;
  if (text === undefined) return false;
  return text.includes(JSON.stringify(spec.guard.underlay)) && spec.guard.ports.every((p) => new RegExp(`\\b${p}\\b`).test(text));
}

function hasRules(state: AllowListState | undefined, rules: readonly string[]): boolean {
  return state !== undefined && rules.every((r) => r in state.dropped) && Object.keys(state.dropped).length === rules.length;
}

export interface AllowListState {
  readonly peers: string[];
  /** Drop counters by rule comment (kmcast-vxlan, kmcast-control). */
  readonly dropped: Record<string, number>;
  /** The guard rule's match, as read back (JSON text), when the table has one. */
  readonly guard?: string | undefined;
  /** The capture chain as read back, when the spec asked for one. */
  readonly capture?: CaptureState | undefined;
}

type NftObj = Record<string, Record<string, unknown>>;

/** Parses `nft -j list table ip kmcast`. Pure. */
export function parseAllowList(stdout: string): AllowListState {
  const doc = JSON.parse(stdout) as { nftables?: NftObj[] };
  const peers: string[] = [];
  const dropped: Record<string, number> = {};
  let guard: string | undefined;
  for (const o of doc.nftables ?? []) {
    if (o.set && o.set.name === 'peers' && Array.isArray(o.set.elem)) {
      for (const e of o.set.elem as unknown[]) if (typeof e === 'string') peers.push(e);
    }
    if (o.rule && typeof o.rule.comment === 'string') {
      const exprs = (Array.isArray(o.rule.expr) ? o.rule.expr : []) as Record<string, unknown>[];
      const counter = exprs.find((x) => x.counter)?.counter as { packets?: number } | undefined;
      if (exprs.some((x) => 'drop' in x)) dropped[o.rule.comment] = counter?.packets ?? 0;
      if (o.rule.comment === GUARD_RULE) guard = JSON.stringify(exprs.filter((x) => 'match' in x));
    }
  }
  return { peers: sortIpv4(peers), dropped, ...(guard !== undefined ? { guard } : {}) };
}

export class AllowList {
  private readonly nft: NftClient;

  constructor(
    runner: Runner,
    netns?: string,
    /** The family of the table it installs, reads and removes (AllowListSpec.family). */
    private readonly family: AllowListFamily = 'ip',
  ) {
    this.nft = new NftClient(runner, netns);
  }

  /**
   * Installs the list and verifies it by reading it back; throws if the kernel disagrees. When
   * the table already has the right rules only the peer set is swapped, so the drop counters
   * survive peer changes; otherwise the whole table is replaced.
   */
  async apply(spec: AllowListSpec): Promise<AllowListState> {
    const rules = expectedRules(spec);
    const want = sortIpv4(new Set(spec.peers));
    const current = await this.read(spec.capture).catch(() => undefined);
    const captureOk = !spec.capture || captureMatches(current?.capture, spec.capture);
    // A guard on another interface or other ports: the whole table is replaced.
    const rulesOk = hasRules(current, rules) && guardMatches(current, spec);
    if (rulesOk && current!.peers.join() === want.join() && captureOk) return current!;
    const peersOk = rulesOk && current!.peers.join() === want.join();
    let script = peersOk ? '' : rulesOk ? allowListUpdateScript(want, this.family) : allowListScript({ ...spec, family: this.family });
    // The capture drifted (deleted by hand, vx0 re-created): replace it in the same transaction.
    if (rulesOk && !captureOk) script += `${captureScript(spec.capture!).join('\n')}\n`;
    try {
      await this.nft.apply(script);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      // nft echoes the line it refused: a capture line is the capture's error (capture.ts).
      if (spec.capture && /hook egress|fwd to|Interface does not exist/i.test(msg)) throw nftError('install eth0 capture', err);
      if (/ENOENT|not found|No such file|spawn nft/i.test(msg)) {
        throw new CapabilityError(
          'install admission allow-list: the nft command is missing; install nftables in the image, or run with --insecure-no-allowlist (VXLAN then accepts frames from anyone who can reach the pod)',
          { cause: err },
        );
      }
      if (/Operation not permitted|Permission denied/i.test(msg)) {
        throw new CapabilityError('install admission allow-list: not permitted; the agent needs CAP_NET_ADMIN', { cause: err });
      }
      throw new KmcastError(`install admission allow-list: ${msg}`, { cause: err });
    }
    const state = await this.read(spec.capture);
    if (!state || state.peers.join() !== want.join() || !hasRules(state, rules) || !guardMatches(state, spec)) {
      throw new KmcastError(`verify admission allow-list: read back ${JSON.stringify(state)} but installed peers ${JSON.stringify(want)} with rules ${rules.join(', ')}`);
    }
    if (spec.capture && !captureMatches(state.capture, spec.capture)) {
      throw new KmcastError(`verify eth0 capture: read back ${JSON.stringify(state.capture)} but installed ${JSON.stringify(spec.capture)}`);
    }
    return state;
  }

  /** With `capture`, the capture chain is read back too (into `capture`). */
  async read(capture?: CaptureSpec): Promise<AllowListState | undefined> {
    const r = await this.nft.listTable(this.family, NFT_TABLE, { json: true });
    if (r.code !== 0) return undefined;
    const state = parseAllowList(r.stdout);
    return capture ? { ...state, capture: await readCapture(this.nft) } : state;
  }

  /** Removes the list; with `capture`, the capture chain too. */
  async remove(opts: { capture?: boolean } = {}): Promise<void> {
    await this.nft.deleteTable(this.family, NFT_TABLE);
    if (opts.capture) await removeCapture(this.nft);
  }
}
