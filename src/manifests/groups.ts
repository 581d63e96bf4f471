/**
 * IPv4 multicast group arithmetic, pure. Used by `generate` (parsing --group) and by the lint
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
