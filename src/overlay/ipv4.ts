/** Pure IPv4 address math used by the overlay and by config validation. */

export function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isIpv4(s: string): boolean {
  return parseIpv4(s) !== undefined;
}

export interface Cidr {
  readonly network: number;
  readonly prefix: number;
}

export function parseCidr(s: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
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
  return n !== undefined && ((n & maskOf(c.prefix)) >>> 0) === c.network;
}

/** 224.0.0.0/4. */
export function isMulticast(ip: string): boolean {
  const n = parseIpv4(ip);
  return n !== undefined && n >>> 28 === 0xe;
}

/**
 * 224.0.0.0/24, the local network control block (RFC 5771): never routed, and the kernel refuses
 * VXLAN MDB entries for it ("IPv4 entry group address is local multicast"), so it always floods.
 */
export function isLinkLocalMulticast(ip: string): boolean {
  const n = parseIpv4(ip);
  return n !== undefined && n >>> 8 === 0xe00000;
}

/** Sort IPv4 strings numerically (stable output for tests, logs and batches). */
export function sortIpv4(ips: Iterable<string>): string[] {
  return [...ips].sort((a, b) => (parseIpv4(a) ?? 0) - (parseIpv4(b) ?? 0) || a.localeCompare(b));
}
