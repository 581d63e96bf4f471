/**
 * Who the nftables allow-list admits (docs/protocol.md, "Admission allow-list"). Pure.
 * - With a key, VXLAN follows authenticated peers: only peers alive through a STATE with a valid
 *   HMAC, never addresses DNS merely lists (a listed pod that never authenticated could otherwise
 *   inject frames). The control port stays open to everyone: the HMAC guards it, and a new pod
 *   must reach us before DNS lists it (fast join).
 * - Without a key, the source address is all there is: both ports admit listed and alive peers.
 * - `inherited`: what a previous agent on this vx0 admitted, kept during the restart grace period
 *   (like its replication entries), so a sidecar restart does not cut traffic from live peers.
 */
import { sortIpv4 } from '../net/ipv4.js';

export interface AdmissionInput {
  readonly keyed: boolean;
  /** Peers DNS or --peers lists (targets of our STATE). */
  readonly listed: readonly string[];
  /** Peers alive (with a key: authenticated). */
  readonly alive: readonly string[];
  readonly inherited?: readonly string[];
}

export interface Admission {
  /** Source addresses admitted to the VXLAN port (and to the control port when filtered). */
  readonly vxlan: string[];
  /** Whether the control port is filtered by the same set (only without a key). */
  readonly controlFiltered: boolean;
}

export function admittedPeers(input: AdmissionInput): Admission {
  const set = new Set([...input.alive, ...(input.inherited ?? [])]);
  if (!input.keyed) for (const ip of input.listed) set.add(ip);
  return { vxlan: sortIpv4(set), controlFiltered: !input.keyed };
}
