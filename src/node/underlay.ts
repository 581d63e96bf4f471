/**
 * What the underlay carries: VXLAN adds 50 bytes over IPv4 and 70 over IPv6 (outer Ethernet 14,
 * IPv6 40, UDP 8, VXLAN 8). Over IPv4 a longer frame still crosses: the kernel fragments the outer
 * packet. Over IPv6 it never does: a VXLAN packet is no socket's own datagram, so ip6_fragment
 * refuses it (counted as Ip6FragFails) and the frame is lost. A member whose MTU exceeds the
 * underlay MTU - 70 on an IPv6 underlay can therefore send frames no other node receives: each
 * fragment of its datagrams must fit. The agent gives such a member's IPv6 multicast route that
 * MTU (pod-routes.ts), so only an app that fragments at its device's MTU anyway is left over
 * (counted: overlongBound). Pure.
 */
import { vxlanOverhead } from '../overlay/desired.js';

/** The longest IP packet a member may send that crosses an underlay of `underlayMtu` under `nodeIp`'s family. */
export function carriedPacket(nodeIp: string, underlayMtu: number): number {
  return underlayMtu - vxlanOverhead(nodeIp);
}

/**
 * The members whose MTU lets them send frames the underlay drops: only on an IPv6 underlay (IPv4
 * fragments its outer packets). A member of unknown MTU is not named.
 */
export function membersOverUnderlay<M extends { readonly mtu?: number | undefined }>(members: readonly M[], nodeIp: string, underlayMtu: number): M[] {
  if (!nodeIp.includes(':')) return [];
  const max = carriedPacket(nodeIp, underlayMtu);
  return members.filter((m) => m.mtu !== undefined && m.mtu > max);
}

/**
 * The bound the capture chains count frames over (`overlong`): the carried size on an IPv6
 * underlay, where longer VXLAN copies are lost; none on IPv4, which fragments them. Pure.
 */
export function overlongBound(nodeIp: string, underlayMtu: number): number | undefined {
  return nodeIp.includes(':') ? carriedPacket(nodeIp, underlayMtu) : undefined;
}
