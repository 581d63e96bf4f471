/**
 * The per-domain delivery hop: why it exists, its devices and their repair. The pure part names
 * the devices and decides what to (re)create from a link listing; `ensureDelivery` applies it.
 *
 * A decapsulated VXLAN frame whose outer packet was IP-fragmented on the underlay is
 * CHECKSUM_COMPLETE after reassembly, and a netdev `dup to`/`fwd to` of it from the VXLAN
 * device's ingress reaches a pod with a stale skb->csum (nf_dup_netdev pushes the MAC header
 * without skb_postpush_rcsum, then the veth's __dev_forward_skb does skb_postpull_rcsum): the pod
 * drops it as a UDP checksum error (docs/kernel-notes.md). A bridge forwarding the frame calls
 * skb_forward_csum, which demotes CHECKSUM_COMPLETE to CHECKSUM_NONE; the pod then checks the
 * checksum itself and it is right (the payload was never wrong, only the skb's metadata).
 *
 * So the VXLAN device's ingress chain forwards into `kmcdi<vni>`, a veth whose peer `kmcdp<vni>`
 * is a port of the domain's bridge `kmcdb<vni>` (STP and snooping off: every frame is flooded);
 * the bridge's other port `kmcdo<vni>` is a veth whose far end `kmcdr<vni>` is where the node
 * table's delivery chain copies each frame out of every local member's host veth. Every size,
 * fragmented or not, link-local groups and broadcast alike; nothing changes inside a pod.
 * No address, no IPv6 (addrgenmode none), no routes on any of them: the node's stack never sees
 * a frame, and a frame that is not IPv4 multicast or limited broadcast never enters the hop.
 */
import type { IpClient } from '../kernel/ip.js';
import type { LinkInfo } from '../kernel/parse.js';

export interface DeliveryDevices {
  /** Forward target of the VXLAN device's ingress chain (veth). */
  readonly in: string;
  /** Its peer, a bridge port. */
  readonly port: string;
  readonly bridge: string;
  /** The bridge's other port (veth). */
  readonly out: string;
  /** Its peer: the delivery chain's ingress hook. */
  readonly recv: string;
}

/** The domain's delivery devices; at most 13 bytes for any 24-bit VNI. Pure. */
export function deliveryDevices(vni: number): DeliveryDevices {
  return { in: `kmcdi${vni}`, port: `kmcdp${vni}`, bridge: `kmcdb${vni}`, out: `kmcdo${vni}`, recv: `kmcdr${vni}` };
}

/** Every device name of `d`, in creation order. Pure. */
export function deliveryNames(d: DeliveryDevices): string[] {
  return [d.bridge, d.in, d.port, d.out, d.recv];
}

/** Why the listing does not show the domain's hop as built, or undefined when it does. Pure. */
export function deliveryProblem(d: DeliveryDevices, links: ReadonlyMap<string, LinkInfo>): string | undefined {
  const want: [string, string, string | undefined][] = [
    [d.bridge, 'bridge', undefined],
    [d.in, 'veth', undefined],
    [d.port, 'veth', d.bridge],
    [d.out, 'veth', d.bridge],
    [d.recv, 'veth', undefined],
  ];
  for (const [name, kind, master] of want) {
    const l = links.get(name);
    if (!l) return `${name} missing`;
    if (l.kind !== kind) return `${name} is ${l.kind ?? 'unknown'}, not ${kind}`;
    if (l.master !== master) return `${name} ${master ? `not a port of ${master}` : `enslaved to ${l.master}`}`;
    if (!l.up) return `${name} down`;
  }
  return undefined;
}

/** `ip -batch` lines that build the hop from nothing. Pure. */
export function deliveryBuild(d: DeliveryDevices): string[] {
  const lines = [`link add ${d.bridge} type bridge stp_state 0 mcast_snooping 0`, `link add ${d.in} type veth peer name ${d.port}`, `link add ${d.out} type veth peer name ${d.recv}`];
  for (const n of deliveryNames(d)) lines.push(`link set ${n} addrgenmode none`);
  for (const p of [d.port, d.out]) lines.push(`link set ${p} master ${d.bridge}`, `link set ${p} type bridge_slave learning off`);
  for (const n of deliveryNames(d)) lines.push(`link set ${n} up`);
  return lines;
}

/**
 * Builds or repairs the domain's hop: anything missing, down or re-wired is deleted and the whole
 * hop rebuilt (a rule naming a recreated device must be reloaded: the caller marks a rebind when
 * this returns true).
 */
export async function ensureDelivery(ip: IpClient, vni: number): Promise<boolean> {
  const d = deliveryDevices(vni);
  const links = new Map((await ip.links({ all: true })).map((l) => [l.name, l]));
  if (deliveryProblem(d, links) === undefined) return false;
  for (const n of [d.bridge, d.in, d.out]) if (links.has(n)) await ip.deleteLink(n);
  // A lone peer left by an earlier partial build would block `link add ... peer name`.
  for (const n of [d.port, d.recv]) if (links.has(n)) await ip.deleteLink(n);
  await ip.ipBatch(deliveryBuild(d));
  return true;
}

/** Removes the domain's hop (uninstall). */
export async function removeDelivery(ip: IpClient, vni: number): Promise<void> {
  const d = deliveryDevices(vni);
  for (const n of [d.bridge, d.in, d.out]) await ip.deleteLink(n);
}
