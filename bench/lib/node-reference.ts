/**
 * Node mode's data path built by hand, with no agent: on every node of the domain its VXLAN
 * device, the flood entries towards the other member nodes, the group's MDB entries towards the
 * nodes whose members joined it and the catch-all entry of unregistered groups (blackholed), the
 * delivery hop, the same nftables netdev table (delivery tiers by member MTU) and the node's
 * underlay filter (`ip kmcast`: overlay and control ports from peers and the underlay only, which
 * every received VXLAN packet passes). What the agents of the bench's labs program, entry for
 * entry. The devices and chains come from the agent's own pure renderers (src/node/nft.ts,
 * src/node/delivery.ts, src/overlay/allowlist.ts), so the reference is the same kernel path; what
 * the agent adds on top (its passes, heartbeats, monitors running beside the traffic) is what a
 * ratio against it shows. The batch lines and scripts are written here, not in the agent (the
 * bench is the lab's rig); the commands that apply them are the kernel clients' (src/kernel).
 */
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_UPLINK, podHostLink, podIndex } from '../../src/lab/plan.js';
import { NODE_CONTROL_PORT, NODE_VXLAN_PORT } from '../../src/node/api.js';
import { deliveryBuild, deliveryDevices, deliveryNames } from '../../src/node/delivery.js';
import { NODE_TABLE, desiredChains, renderRuleset } from '../../src/node/nft.js';
import { NFT_TABLE as ALLOW_TABLE, allowListScript } from '../../src/overlay/allowlist.js';
import { BLACKHOLE_IP, VXLAN_OVERHEAD } from '../../src/overlay/desired.js';
import { IpClient } from '../../src/kernel/ip.js';
import { NftClient } from '../../src/kernel/nft.js';
import { runner } from './net.js';

export interface NodeReference {
  remove(): Promise<void>;
}

export interface NodeReferenceOptions {
  /** Nodes that hold the domain's device and hop with no member pod on them (a gateway node). */
  readonly extraNodes?: readonly LabNode[];
  /** The members that joined the group (default: all): a node replicates it only to the other nodes with one. */
  readonly joined?: readonly LabPod[];
}

export async function linkMtu(netns: string, dev: string): Promise<number> {
  const l = await new IpClient(runner, netns).link(dev);
  if (!l) throw new Error(`${netns}: no ${dev}`);
  return l.mtu;
}

/**
 * Removes the domain's node path from `nodes`, whoever built it: this reference, or node agents
 * (which keep their devices, entries and node tables over SIGTERM so that a restart adopts them).
 */
export async function clearNodePath(nodes: readonly LabNode[], vni: number): Promise<void> {
  const hop = deliveryDevices(vni);
  for (const n of nodes) {
    const nft = new NftClient(runner, n.netns);
    await nft.deleteTable('netdev', NODE_TABLE);
    await nft.deleteTable('ip', ALLOW_TABLE);
    const ip = new IpClient(runner, n.netns);
    await ip.ipBatch([`route del blackhole ${BLACKHOLE_IP}`]).catch(() => undefined);
    for (const d of [`kmcvx${vni}`, ...deliveryNames(hop)]) await ip.deleteLink(d);
  }
}

/** The host veth of a member pod in its node's namespace. */
export const hostVeth = (p: LabPod): string => podHostLink(podIndex(p));

/**
 * Builds the reference for one domain (`vni`) whose members are `pods`, with `group` replicated
 * from every node to every other node with a member that joined it (as the agents do once those
 * members joined it; by default all of them).
 */
export async function buildNodeReference(lab: Lab, pods: readonly LabPod[], vni: number, group: string, opts: NodeReferenceOptions = {}): Promise<NodeReference> {
  const device = `kmcvx${vni}`;
  const hop = deliveryDevices(vni);
  const joined = opts.joined ?? pods;
  const memberNodes = lab.nodes.filter((n) => pods.some((p) => p.node === n.index));
  const nodes = lab.nodes.filter((n) => memberNodes.includes(n) || (opts.extraNodes ?? []).includes(n));
  const built: LabNode[] = [];
  const remove = async (): Promise<void> => await clearNodePath(built, vni);
  try {
    for (const n of nodes) {
      built.push(n);
      const floodTo = memberNodes.filter((o) => o !== n).map((o) => o.underlayIp);
      const replicateTo = lab.nodes.filter((o) => o !== n && joined.some((p) => p.node === o.index)).map((o) => o.underlayIp);
      const local = pods.filter((p) => p.node === n.index);
      const members = local.map(hostVeth);
      const mtus = new Map<string, number>();
      for (const m of members) mtus.set(m, await linkMtu(n.netns, m));
      const lines = [
        `link add ${device} type vxlan id ${vni} dstport ${NODE_VXLAN_PORT} dev ${NODE_UPLINK} local ${n.underlayIp} nolearning`,
        `link set ${device} addrgenmode none`,
        `link set ${device} mtu ${(await linkMtu(n.netns, NODE_UPLINK)) - VXLAN_OVERHEAD} up`,
        ...deliveryBuild(hop),
        `route replace blackhole ${BLACKHOLE_IP}`,
      ];
      const ip = new IpClient(runner, n.netns);
      await ip.ipBatch(lines);
      const entries = [
        ...floodTo.map((dst) => `fdb append 00:00:00:00:00:00 dev ${device} dst ${dst}`),
        ...replicateTo.map((dst) => `mdb replace dev ${device} port ${device} grp ${group} permanent dst ${dst}`),
        `mdb replace dev ${device} port ${device} grp 0.0.0.0 permanent dst ${BLACKHOLE_IP}`,
      ];
      await ip.bridge.batch(entries);
      const nft = new NftClient(runner, n.netns);
      await nft.apply(renderRuleset(desiredChains([{ vni, device, members, mtus }])));
      // The lab's agents run without a key, so the control port is filtered by source too.
      const peers = lab.nodes.filter((o) => o !== n).map((o) => o.underlayIp);
      const allow = allowListScript({ vxlanPort: NODE_VXLAN_PORT, controlPort: NODE_CONTROL_PORT, peers, guard: { underlay: NODE_UPLINK, ports: [NODE_VXLAN_PORT, NODE_CONTROL_PORT] } });
      await nft.apply(allow);
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return { remove };
}
