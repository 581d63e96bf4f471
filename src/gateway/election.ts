/**
 * Which gateway of a domain forwards. Pure.
 *
 * Gateways of one domain hear each other over the control protocol (their own label,
 * `gw:<vni>/<service>`, STATE every heartbeat, LEAVE on shutdown). The lowest node IP among the
 * alive ones is active; the others stand by: they join nothing and forward nothing, so the
 * outside never sees two copies and a datagram is never handed in twice. A gateway that just
 * started waits `settleMs` (two heartbeats: the others answer its first STATE at once) before it
 * may be active, so a restart does not make two active at the same time.
 */
import { compareIpv4 } from '../net/ipv4.js';
import { compareIpv6 } from '../net/ipv6.js';

/**
 * Node IPs in order: numerically within a family (IPv4 or, on an IPv6 underlay, IPv6; the
 * gateways of a domain share the underlay's family), IPv4 first should two ever meet.
 */
export function compareNodeIp(a: string, b: string): number {
  const fa = a.includes(':') ? 6 : 4;
  const fb = b.includes(':') ? 6 : 4;
  if (fa !== fb) return fa - fb;
  return fa === 6 ? compareIpv6(a, b) : compareIpv4(a, b);
}

export interface ElectionInput {
  readonly self: string;
  /** Node IPs of the other alive gateways of the domain. */
  readonly others: readonly string[];
  readonly now: number;
  /** Before this time the gateway stays standby (settling after start). */
  readonly settledAt: number;
}

export interface ElectionResult {
  readonly active: boolean;
  /** The gateway that forwards (this one, another, or none while settling alone). */
  readonly activeGateway: string | undefined;
  readonly reason: 'elected' | 'lower-ip-alive' | 'settling';
}

export function elect(i: ElectionInput): ElectionResult {
  const lowest = [...i.others].sort(compareNodeIp)[0];
  if (lowest !== undefined && compareNodeIp(lowest, i.self) < 0) return { active: false, activeGateway: lowest, reason: 'lower-ip-alive' };
  if (i.now < i.settledAt) return { active: false, activeGateway: lowest, reason: 'settling' };
  return { active: true, activeGateway: i.self, reason: 'elected' };
}

/** The gateway a non-gateway node agent sees as active: the lowest alive one. */
export function observedActive(alive: readonly string[]): string | undefined {
  return [...alive].sort(compareNodeIp)[0];
}
