/**
 * Multicast group arithmetic of both families, pure. Used by `generate` (parsing --group) and by the lint
 * rules on group addresses.
 */
import { InputError } from '../errors.js';

export interface GroupSpec {
  readonly address: string;
  readonly port: number;
}

// The shared IPv4 parser, under the names the manifest code uses.
export { formatIpv4 as formatIPv4, parseIpv4 as parseIPv4 } from '../net/ipv4.js';
import { parseIpv4 as parseIPv4 } from '../net/ipv4.js';
import { formatIpv6, isIpv6Multicast, isSolicitedNode, multicastScope, parseIpv6 } from '../net/ipv6.js';

/** True when `addr` lies in `base/bits`. */
export function inCidr(addr: number, base: number, bits: number): boolean {
  if (bits === 0) return true;
  const mask = (~0 << (32 - bits)) >>> 0;
  return (addr & mask) >>> 0 === (base & mask) >>> 0;
}

const net = (text: string): number => parseIPv4(text)!;
export const MULTICAST = { base: net('224.0.0.0'), bits: 4 } as const;
export const LINK_LOCAL = { base: net('224.0.0.0'), bits: 24 } as const;
export const SSM = { base: net('232.0.0.0'), bits: 8 } as const;
export const GLOP = { base: net('233.0.0.0'), bits: 8 } as const;
export const ADMIN_SCOPED = { base: net('239.0.0.0'), bits: 8 } as const;

export type GroupClass = 'not-multicast' | 'link-local' | 'ssm' | 'glop' | 'admin-scoped' | 'global';

/** Where a group address falls among the IANA IPv4 multicast blocks (RFC 5771). */
export function classifyGroup(addr: number): GroupClass {
  if (!inCidr(addr, MULTICAST.base, MULTICAST.bits)) return 'not-multicast';
  if (inCidr(addr, LINK_LOCAL.base, LINK_LOCAL.bits)) return 'link-local';
  if (inCidr(addr, SSM.base, SSM.bits)) return 'ssm';
  if (inCidr(addr, GLOP.base, GLOP.bits)) return 'glop';
  if (inCidr(addr, ADMIN_SCOPED.base, ADMIN_SCOPED.bits)) return 'admin-scoped';
  return 'global';
}

export type Group6Class = 'not-multicast' | 'reserved-scope' | 'interface-local' | 'nd-mld' | 'ssm' | 'link-local' | 'global' | 'scoped';

/** ff02::1, ff02::2, ff02::16: the all-nodes, all-routers and MLDv2 groups Neighbor Discovery and MLD use. */
const ND_MLD = new Set(['ff02::1', 'ff02::2', 'ff02::16']);

/** Where an IPv6 address falls among the multicast scopes and reserved groups (RFC 4291 2.7, RFC 4607, RFC 7346). */
export function classifyGroup6(text: string): Group6Class {
  const b = parseIpv6(text);
  if (b === undefined || !isIpv6Multicast(b)) return 'not-multicast';
  const scope = multicastScope(b)!;
  if (scope === 0 || scope === 0xf) return 'reserved-scope';
  if (scope === 1) return 'interface-local';
  if (ND_MLD.has(formatIpv6(b)) || isSolicitedNode(b)) return 'nd-mld';
  // ff3X::/32: the SSM range (flags P=1, T=1, prefix length 0, network prefix 0).
  if (b[1]! >> 4 === 3 && b[2] === 0 && b[3] === 0) return 'ssm';
  if (scope === 2) return 'link-local';
  if (scope === 0xe) return 'global';
  return 'scoped';
}

/** The Ethernet MAC an IPv6 group maps to (RFC 2464 section 7): 33:33 plus its low 32 bits. */
export function groupMac6(text: string): string {
  const b = parseIpv6(text)!;
  return [0x33, 0x33, b[12]!, b[13]!, b[14]!, b[15]!].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * The Ethernet MAC an IPv4 group maps to (RFC 1112 section 6.4): 01:00:5e plus the low 23 bits,
 * so 32 groups share one MAC and NICs, bridges and snooping switches cannot tell them apart.
 */
export function groupMac(addr: number): string {
  const low = addr & 0x7fffff;
  const bytes = [0x01, 0x00, 0x5e, (low >>> 16) & 0x7f, (low >>> 8) & 255, low & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * Parses `G:PORT` (the --group syntax of generate and probe). Throws an InputError naming the
 * mistake; `where` prefixes the message (a flag name or `file:line`).
 */
export function parseGroupSpec(text: string, where = '--group'): GroupSpec {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text.trim());
  if (!m) {
    throw new InputError(`${where}: parse group "${text}": expected ADDRESS:PORT, for example 239.1.2.3:5000`);
  }
  const addr = parseIPv4(m[1]!);
  if (addr === undefined) throw new InputError(`${where}: parse group "${text}": ${m[1]} is not an IPv4 address`);
  if (classifyGroup(addr) === 'not-multicast') {
    throw new InputError(`${where}: parse group "${text}": ${m[1]} is not a multicast address (224.0.0.0/4); use 239.x.y.z for private groups`);
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new InputError(`${where}: parse group "${text}": port must be between 1 and 65535`);
  return { address: m[1]!, port };
}
