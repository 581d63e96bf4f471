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
 * IGMP is left on eth0: the overlay's membership is the agents' STATE, not IGMP, and a report
 * moved into vx0 would be flooded to every peer (224.0.0.22 and 224.0.0.x are link-local) on
 * every join, leave and query answer for nobody to use; on eth0 it does what it does today.
 * Pure: no kernel access.
 */
import { CapabilityError, KmcastError } from '../errors.js';
import type { NftClient } from '../kernel/nft.js';

export const CAPTURE_TABLE = 'kmcast';
export const CAPTURE_CHAIN = 'capture';
export const CAPTURE_COMMENT = 'kmcast-capture';

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
  /** Frames moved into the overlay since the chain was installed. */
  readonly packets: number;
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
    '  }',
    '}',
  ];
}

/**
 * Parses `nft list table netdev kmcast` (text: nft 1.0's JSON leaves out a netdev chain's
 * device); undefined when the chain or its rule is missing. Pure.
 */
export function parseCapture(stdout: string): CaptureState | undefined {
  // The chain's body: up to the line that is only its closing brace (a set's brace is mid-line).
  const chain = new RegExp(`chain ${CAPTURE_CHAIN} \\{\\n([\\s\\S]*?)\\n\\s*\\}\\s*(?:\\n|$)`).exec(stdout)?.[1];
  if (chain === undefined) return undefined;
  const dev = /hook egress device "?([^";\s]+)"?/.exec(chain)?.[1];
  const rule = chain.split('\n').find((l) => l.includes(`comment "${CAPTURE_COMMENT}"`));
  if (!dev || !rule) return undefined;
  const fwd = /fwd to "?([^"\s]+)"?/.exec(rule)?.[1];
  const set = /ip daddr \{ ([^}]*) \}/.exec(rule)?.[1] ?? /ip daddr (\S+)/.exec(rule)?.[1] ?? '';
  if (fwd === undefined) return undefined;
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
    packets: Number(/counter packets (\d+)/.exec(rule)?.[1] ?? 0),
  };
}

/** True when the kernel's chain is the one `spec` asks for (device by name, every address, IGMP kept). */
export function captureMatches(state: CaptureState | undefined, spec: CaptureSpec): boolean {
  if (!state) return false;
  const want = daddrs(spec);
  return state.underlay === spec.underlay && state.forwardTo === spec.device && state.igmpKept && state.daddrs.length === want.length && want.every((d) => state.daddrs.includes(d));
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
