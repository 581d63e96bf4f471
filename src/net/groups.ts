/**
 * Multicast groups of either family, as one kind of value (pure). A group is kept as its
 * canonical text (a dotted quad, or RFC 5952 IPv6), so sets of groups compare as strings;
 * IPv4 groups sort before IPv6 ones, each family in numeric order.
 */
import { compareIpv4, formatIpv4, isLinkLocalMulticast, isMulticast, isRoutableMulticast, parseIpv4 } from './ipv4.js';
import { compareIpv6, formatIpv6, isIpv6LinkLocalMulticast, isIpv6Multicast, isIpv6RoutableMulticast, parseIpv6 } from './ipv6.js';

export type Family = 4 | 6;

/** 4 for a dotted quad, 6 for IPv6 text, undefined for anything else. */
export function familyOf(text: string): Family | undefined {
  if (parseIpv4(text) !== undefined) return 4;
  if (parseIpv6(text) !== undefined) return 6;
  return undefined;
}

/** The canonical text of a multicast group of either family, or undefined when it is none. */
export function canonicalGroup(text: string): string | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return isMulticast(v4) ? formatIpv4(v4) : undefined;
  const v6 = parseIpv6(text);
  if (v6 !== undefined) return isIpv6Multicast(v6) ? formatIpv6(v6) : undefined;
  return undefined;
}

/**
 * A group that is announced in STATE and gets MDB entries: 224.0.0.0/4 outside 224.0.0.0/24, or
 * IPv6 multicast of realm scope or wider. Link-local groups of both families flood instead.
 */
export function isRoutableGroup(text: string): boolean {
  return familyOf(text) === 6 ? isIpv6RoutableMulticast(text) : isRoutableMulticast(text);
}

/** 224.0.0.0/24 or ffX2::/16: carried by flooding to every member node, never announced. */
export function isLinkLocalGroup(text: string): boolean {
  return familyOf(text) === 6 ? isIpv6LinkLocalMulticast(text) : isLinkLocalMulticast(text);
}

/** IPv4 before IPv6, each numerically; non-addresses first. */
export function compareGroups(a: string, b: string): number {
  const fa = familyOf(a) ?? 0;
  const fb = familyOf(b) ?? 0;
  if (fa !== fb) return fa - fb;
  return fa === 6 ? compareIpv6(a, b) : compareIpv4(a, b);
}

/** Sorted copy without duplicates (canonical spellings assumed). */
export function sortGroups(groups: Iterable<string>): string[] {
  return [...new Set(groups)].sort(compareGroups);
}
