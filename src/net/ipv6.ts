/**
 * IPv6 address rules shared by the control protocol, the data path and config validation (pure).
 * Parsing and RFC 5952 text come from ipaddr.js; the multicast rules are ours (RFC 4291 section
 * 2.7, RFC 7346 for the scopes). Addresses travel as 16 bytes on the wire and as RFC 5952 text
 * everywhere else, so two spellings of one group are one string.
 */
import { isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';

/** 16 bytes, or undefined when `text` is no plain IPv6 address (a zone `%eth0` is refused). */
export function parseIpv6(text: string): Buffer | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  return Buffer.from(ipaddr.IPv6.parse(text).toByteArray());
}

/** RFC 5952 text of 16 bytes (lower case, longest zero run compressed). */
export function formatIpv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`formatIpv6: need 16 bytes, got ${bytes.length}`);
  return ipaddr.fromByteArray([...bytes]).toString();
}

/** The one spelling of an IPv6 address, or undefined when it is none. */
export function canonicalIpv6(text: string): string | undefined {
  const bytes = parseIpv6(text);
  return bytes === undefined ? undefined : formatIpv6(bytes);
}

export function isIpv6(text: string): boolean {
  return parseIpv6(text) !== undefined;
}

function bytesOf(ip: Uint8Array | string): Uint8Array | undefined {
  return typeof ip === 'string' ? parseIpv6(ip) : ip.length === 16 ? ip : undefined;
}

/** ff00::/8. */
export function isIpv6Multicast(ip: Uint8Array | string): boolean {
  const b = bytesOf(ip);
  return b !== undefined && b[0] === 0xff;
}

/**
 * The scope of a multicast address (RFC 4291 2.7, RFC 7346): 1 interface-local, 2 link-local,
 * 3 realm-local, 4 admin-local, 5 site-local, 8 organization-local, 0xe global; undefined for a
 * non-multicast address.
 */
export function multicastScope(ip: Uint8Array | string): number | undefined {
  const b = bytesOf(ip);
  return b !== undefined && b[0] === 0xff ? b[1]! & 0x0f : undefined;
}

/** ff02::1:ff00:0/104, the solicited-node groups Neighbor Discovery sends to (RFC 4291 2.7.1). */
export function isSolicitedNode(ip: Uint8Array | string): boolean {
  const b = bytesOf(ip);
  if (b === undefined || b[0] !== 0xff || b[1] !== 0x02) return false;
  for (let i = 2; i < 11; i++) if (b[i] !== 0) return false;
  return b[11] === 0x01 && b[12] === 0xff;
}

/**
 * Link-local scope (ff02::/16 and any ffX2::): never routed; a VXLAN MDB would take such entries,
 * but kmcast floods them to every member node instead, like 224.0.0.0/24 and broadcast, so
 * mDNS (ff02::fb) and SSDP (ff02::c) need no announcement.
 */
export function isIpv6LinkLocalMulticast(ip: Uint8Array | string): boolean {
  return multicastScope(ip) === 2;
}

/**
 * A group that may be announced and get MDB entries: multicast of scope 3 (realm) or wider, and
 * not the reserved scopes 0 and 0xf. Interface-local (1) never leaves a host, link-local (2)
 * floods.
 */
export function isIpv6RoutableMulticast(ip: Uint8Array | string): boolean {
  const s = multicastScope(ip);
  return s !== undefined && s >= 3 && s !== 0xf;
}

/**
 * An address a pod or node can have and a peer can be reached at: not ::, ::1, multicast,
 * link-local fe80::/10 (needs a zone) or IPv4-mapped ::ffff:0:0/96 (use the IPv4 address).
 */
export function isIpv6Unicast(ip: Uint8Array | string): boolean {
  const b = bytesOf(ip);
  if (b === undefined || b[0] === 0xff) return false;
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return false;
  let zeros = 0;
  while (zeros < 16 && b[zeros] === 0) zeros++;
  if (zeros === 16 || (zeros === 15 && b[15] === 1)) return false;
  if (zeros === 10 && b[10] === 0xff && b[11] === 0xff) return false;
  return true;
}

/** Byte order; addresses that do not parse sort first, by text. */
export function compareIpv6(a: string, b: string): number {
  const x = parseIpv6(a);
  const y = parseIpv6(b);
  if (x && y) return Buffer.compare(x, y);
  if (x) return 1;
  if (y) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}
