/**
 * IPv4 address math shared by the control protocol, the overlay and config validation (pure).
 * Addresses travel as 32-bit big-endian integers on the wire and as dotted quads everywhere
 * else; the predicates take either form, a string that is not a dotted quad answers false.
 */

/** Parses a dotted quad strictly (no leading zeros, no shorthand); undefined when it is not one. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    // Leading zeros are refused: inet_aton reads "010" as octal, so such text is ambiguous.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return `${(value >>> 24) & 255}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

export function isIpv4(text: string): boolean {
  return parseIpv4(text) !== undefined;
}

function valueOf(ip: number | string): number | undefined {
  return typeof ip === 'number' ? ip : parseIpv4(ip);
}

/** 224.0.0.0/4. */
export function isMulticast(ip: number | string): boolean {
  const v = valueOf(ip);
  return v !== undefined && v >>> 28 === 0xe;
}

/**
 * 224.0.0.0/24, the local network control block (RFC 5771): never routed, and the kernel refuses
 * VXLAN MDB entries for it ("IPv4 entry group address is local multicast"), so it always floods.
 */
export function isLinkLocalMulticast(ip: number | string): boolean {
  const v = valueOf(ip);
  return v !== undefined && v >>> 8 === 0xe00000;
}

/** A group that may be announced and get MDB entries: 224.0.0.0/4 minus 224.0.0.0/24. */
export function isRoutableMulticast(ip: number | string): boolean {
  return isMulticast(ip) && !isLinkLocalMulticast(ip);
}

/** An address a pod can have: not 0.0.0.0/8, not multicast, not class E or broadcast. */
export function isUnicast(ip: number | string): boolean {
  const v = valueOf(ip);
  return v !== undefined && v >>> 24 !== 0 && v >>> 28 < 0xe;
}

/**
 * Why `p`, given in a peer list (`--peers`), is no peer address, or undefined when it is one:
 * an IPv4 unicast address. One rule for the sidecar and the node agent. Pure.
 */
export function peerAddressError(p: string, whose: string): string | undefined {
  if (!isIpv4(p)) return `${JSON.stringify(p)} is not an IPv4 address (give IP,IP,...)`;
  if (!isUnicast(p)) return `${JSON.stringify(p)} is not a unicast IPv4 address (not 0.0.0.0/8, multicast, class E or broadcast): give the ${whose} IPs`;
  return undefined;
}

/** Orders dotted quads numerically (10.0.0.9 before 10.0.0.10); non-addresses first, by text. */
export function compareIpv4(a: string, b: string): number {
  return (parseIpv4(a) ?? -1) - (parseIpv4(b) ?? -1) || (a < b ? -1 : a > b ? 1 : 0);
}

/** Sorted copy (stable output for tests, logs and batches). */
export function sortIpv4(ips: Iterable<string>): string[] {
  return [...ips].sort(compareIpv4);
}

export interface Cidr {
  readonly network: number;
  readonly prefix: number;
}

/** "A.B.C.D/N" with the host bits cleared; undefined when it is not one. */
export function parseCidr(text: string): Cidr | undefined {
  const m = /^([^/]+)\/(0|[1-9][0-9]?)$/.exec(text);
  if (!m) return undefined;
  const ip = parseIpv4(m[1]!);
  const prefix = Number(m[2]);
  if (ip === undefined || prefix > 32) return undefined;
  return { network: (ip & maskOf(prefix)) >>> 0, prefix };
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function broadcastOf(c: Cidr): string {
  return formatIpv4((c.network | (~maskOf(c.prefix) >>> 0)) >>> 0);
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const n = parseIpv4(ip);
  return n !== undefined && (n & maskOf(c.prefix)) >>> 0 === c.network;
}
