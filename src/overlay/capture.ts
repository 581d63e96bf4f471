/**
 * The send-side capture: apps that name the pod interface (IP_MULTICAST_IF eth0, SO_BINDTODEVICE
 * eth0, "first interface" apps) send multicast and limited broadcast out of eth0, where no CNI
 * carries it. An nftables netdev egress chain on eth0 moves those frames into the overlay device
 * (`fwd to "vx0"`), which replicates them by its FDB/MDB like anything routed to it, so nothing
 * is sent natively on eth0 and a same-node pod on a bridge-style node gets exactly one copy.
 *
 * nftables keeps netdev hooks in netdev-family tables, so the chain lives in `table netdev
 * kmcast`, next to the allow-list's `table ip kmcast`, and is written in the same transaction and
 * read back with it (`AllowList.apply` with a `capture` section). `fwd to "DEV"` is resolved to
 * an interface index when the rule loads: a re-created overlay device leaves the rule pointing at
 * the old index (nft then lists it as a number), which the read-back treats as drift.
 *
 * IPv6 multicast is moved the same way, with node mode's match (CAPTURE6_MATCH: ff00::/8 except
 * ICMPv6), so Neighbor Discovery and the pod's MLD reports stay on eth0 and its IPv6 keeps
 * working. IGMP is left on eth0 too: the overlay's membership is the agents' STATE, not IGMP or
 * MLD, and a report moved into vx0 would be flooded to every peer (224.0.0.22, ff02::16 and
 * 224.0.0.x are link-local) on every join, leave and query answer for nobody to use; on eth0 it
 * does what it does today.
 *
 * vx0 has IPv6 on (it must, to receive IPv6 multicast) but no address (`addrgenmode none`: no
 * DAD, no router solicitation). The kernel still sends an MLD report from vx0 (source ::) for
 * every join there (apps' and the agent's own, overlay-joins.ts), which the all-zero FDB entries
 * would flood to every peer: a second chain, on vx0's egress, drops every ICMPv6 frame vx0 sends.
 * Nothing kmcast carries is ICMPv6 (the capture above never takes it), so nothing else is lost.
 * Pure: no kernel access.
 */
import { CapabilityError, KmcastError } from '../errors.js';
import type { NftClient } from '../kernel/nft.js';
import { CAPTURE6_MATCH } from '../node/nft.js';

export const CAPTURE_TABLE = 'kmcast';
export const CAPTURE_CHAIN = 'capture';
export const CAPTURE_COMMENT = 'kmcast-capture';
export const CAPTURE6_COMMENT = 'kmcast-capture6';
/** The chain on the overlay device's egress that keeps its own ICMPv6 (MLD reports) off the overlay. */
export const OVERLAY_OUT_CHAIN = 'overlay-out';
export const OVERLAY_ICMP6_COMMENT = 'kmcast-overlay-icmpv6';

export interface CaptureSpec {
  /** The pod interface apps name (eth0). */
  readonly underlay: string;
  /** The overlay device the frames are moved into (vx0). */
  readonly device: string;
  /** Directed broadcast address carried by the overlay too (--broadcast), if any. */
  readonly broadcastAddress?: string | undefined;
}

export interface CaptureState {
  /** The device the egress chain is attached to. */
  readonly underlay: string;
  /** Where the rule forwards to: a name, or a bare index when the device it was loaded for is gone. */
  readonly forwardTo: string;
  readonly daddrs: readonly string[];
  readonly igmpKept: boolean;
  /** IPv4 frames moved into the overlay since the chain was installed. */
  readonly packets: number;
  /** The IPv6 rule, when there is one: where it forwards to, and the IPv6 frames it moved. */
  readonly ipv6?: { readonly forwardTo: string; readonly packets: number } | undefined;
  /** The device whose ICMPv6 the overlay-out chain drops (vx0), when that chain exists. */
  readonly icmp6DroppedOn?: string | undefined;
  /** ICMPv6 frames (MLD reports) the overlay device sent that the overlay-out chain dropped. */
  readonly icmp6Dropped?: number;
}

function daddrs(spec: CaptureSpec): string[] {
  return ['224.0.0.0/4', '255.255.255.255', ...(spec.broadcastAddress ? [spec.broadcastAddress] : [])];
}

/** The lines of an atomic replace of the netdev table (create, delete, create), for `nft -f -`. */
export function captureScript(spec: CaptureSpec): string[] {
  return [
    `table netdev ${CAPTURE_TABLE}`,
    `delete table netdev ${CAPTURE_TABLE}`,
    `table netdev ${CAPTURE_TABLE} {`,
    `  chain ${CAPTURE_CHAIN} {`,
    `    type filter hook egress device ${JSON.stringify(spec.underlay)} priority 0; policy accept;`,
    '    ip protocol igmp accept',
    `    ip daddr { ${daddrs(spec).join(', ')} } counter fwd to ${JSON.stringify(spec.device)} comment "${CAPTURE_COMMENT}"`,
    `    ${CAPTURE6_MATCH} counter fwd to ${JSON.stringify(spec.device)} comment "${CAPTURE6_COMMENT}"`,
    '  }',
    `  chain ${OVERLAY_OUT_CHAIN} {`,
    `    type filter hook egress device ${JSON.stringify(spec.device)} priority 0; policy accept;`,
    `    meta l4proto 58 counter drop comment "${OVERLAY_ICMP6_COMMENT}"`,
    '  }',
    '}',
  ];
}

/** The body of `chain NAME { ... }` in nft's text listing: up to the line that is only its closing brace (a set's brace is mid-line). */
function chainBody(stdout: string, name: string): string | undefined {
  return new RegExp(`chain ${name} \\{\\n([\\s\\S]*?)\\n\\s*\\}\\s*(?:\\n|$)`).exec(stdout)?.[1];
}

/** nft lists ICMPv6 as `ipv6-icmp` from /etc/protocols, or as 58 where slim images lack the file. */
const ICMP6 = '(?:ipv6-icmp|icmpv6|58)';

function packetsOf(rule: string | undefined): number {
  return Number(/counter packets (\d+)/.exec(rule ?? '')?.[1] ?? 0);
}

/** The overlay-out chain: its device and drop counter, when it has the ICMPv6 drop rule. */
function parseOverlayOut(stdout: string): Pick<CaptureState, 'icmp6DroppedOn' | 'icmp6Dropped'> {
  const chain = chainBody(stdout, OVERLAY_OUT_CHAIN);
  const dev = chain && /hook egress device "?([^";\s]+)"?/.exec(chain)?.[1];
  const rule = chain?.split('\n').find((l) => l.includes(`comment "${OVERLAY_ICMP6_COMMENT}"`) && new RegExp(`meta l4proto ${ICMP6} .*drop`).test(l));
  return dev && rule ? { icmp6DroppedOn: dev, icmp6Dropped: packetsOf(rule) } : {};
}

/**
 * Parses `nft list table netdev kmcast` (text: nft 1.0's JSON leaves out a netdev chain's
 * device); undefined when the chain or its rule is missing. Pure.
 */
export function parseCapture(stdout: string): CaptureState | undefined {
  const chain = chainBody(stdout, CAPTURE_CHAIN);
  if (chain === undefined) return undefined;
  const dev = /hook egress device "?([^";\s]+)"?/.exec(chain)?.[1];
  const rule = chain.split('\n').find((l) => l.includes(`comment "${CAPTURE_COMMENT}"`));
  if (!dev || !rule) return undefined;
  const fwd = /fwd to "?([^"\s]+)"?/.exec(rule)?.[1];
  const set = /ip daddr \{ ([^}]*) \}/.exec(rule)?.[1] ?? /ip daddr (\S+)/.exec(rule)?.[1] ?? '';
  if (fwd === undefined) return undefined;
  const rule6 = chain.split('\n').find((l) => l.includes(`comment "${CAPTURE6_COMMENT}"`) && l.includes('ip6 daddr ff00::/8') && new RegExp(`meta l4proto != ${ICMP6}`).test(l));
  const fwd6 = rule6 && /fwd to "?([^"\s]+)"?/.exec(rule6)?.[1];
  return {
    underlay: dev,
    forwardTo: fwd,
    daddrs: set
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    // nft names the protocol from /etc/protocols, which slim images (the kmcast image) lack:
    // there the rule lists as `ip protocol 2`.
    igmpKept: chain.split('\n').some((l) => /^\s*ip protocol (?:igmp|2) accept\s*$/.test(l)),
    packets: packetsOf(rule),
    ...(fwd6 ? { ipv6: { forwardTo: fwd6, packets: packetsOf(rule6) } } : {}),
    ...parseOverlayOut(stdout),
  };
}

/**
 * True when the kernel's chains are the ones `spec` asks for (device by name, every address, IGMP
 * kept, the IPv6 rule, and vx0's ICMPv6 kept home).
 */
export function captureMatches(state: CaptureState | undefined, spec: CaptureSpec): boolean {
  if (!state) return false;
  const want = daddrs(spec);
  return (
    state.underlay === spec.underlay &&
    state.forwardTo === spec.device &&
    state.igmpKept &&
    state.daddrs.length === want.length &&
    want.every((d) => state.daddrs.includes(d)) &&
    state.ipv6?.forwardTo === spec.device &&
    state.icmp6DroppedOn === spec.device
  );
}

/** Frames of both families the capture moved into the overlay. Pure. */
export function capturedPackets(state: CaptureState | undefined): number {
  return (state?.packets ?? 0) + (state?.ipv6?.packets ?? 0);
}

/** Reads the capture chain back; undefined when the table does not exist. */
export async function readCapture(nft: NftClient): Promise<CaptureState | undefined> {
  const r = await nft.listTable('netdev', CAPTURE_TABLE);
  return r.code === 0 ? parseCapture(r.stdout) : undefined;
}

export async function removeCapture(nft: NftClient): Promise<void> {
  await nft.deleteTable('netdev', CAPTURE_TABLE);
}

/** Maps an nft failure to the error a user can act on. */
export function nftError(what: string, err: unknown): KmcastError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/spawn nft|ENOENT/.test(msg)) {
    return new CapabilityError(`${what}: the nft command is missing; install nftables in the image`, { cause: err });
  }
  if (/Operation not permitted|Permission denied/i.test(msg)) {
    return new CapabilityError(`${what}: not permitted; the agent needs CAP_NET_ADMIN`, { cause: err });
  }
  if (/Interface does not exist/i.test(msg)) {
    return new KmcastError(`${what}: the overlay device or the pod interface does not exist (yet): ${msg}`, { cause: err });
  }
  if (/hook egress/i.test(msg)) {
    return new CapabilityError(`${what}: this kernel has no nftables netdev egress hook (Linux >= 5.16 with CONFIG_NETFILTER_EGRESS); run with --capture off, or use node mode`, { cause: err });
  }
  return new KmcastError(`${what}: ${msg}`, { cause: err });
}

/**
 * The capture alone, for agents without the allow-list (--insecure-no-allowlist): installed and
 * read back the same way, fail closed.
 */
export async function applyCapture(nft: NftClient, spec: CaptureSpec): Promise<CaptureState> {
  const current = await readCapture(nft).catch(() => undefined);
  if (captureMatches(current, spec)) return current!;
  try {
    await nft.apply(`${captureScript(spec).join('\n')}\n`);
  } catch (err) {
    throw nftError('install eth0 capture', err);
  }
  const state = await readCapture(nft);
  if (!captureMatches(state, spec)) {
    throw new KmcastError(`verify eth0 capture: read back ${JSON.stringify(state)} but installed ${JSON.stringify(spec)}`);
  }
  return state!;
}
