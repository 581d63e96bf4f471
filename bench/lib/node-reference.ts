/**
 * Node mode's data path built by hand, with no agent: on every lab node the domain's VXLAN device,
 * its flood entries towards the other nodes and the group's MDB entries, the delivery hop, and the
 * same nftables netdev table. The devices and chains come from the agent's own pure renderers
 * (src/node/nft.ts, src/node/delivery.ts), so the reference is the same kernel path; what the
 * agent adds on top (its passes, heartbeats, monitors running beside the traffic) is what a ratio
 * against it shows. The argv is written here, not in the agent: the bench is the lab's rig.
 */
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_UPLINK, podHostLink, podIndex } from '../../src/lab/plan.js';
import { deliveryBuild, deliveryDevices, deliveryNames } from '../../src/node/delivery.js';
import { NODE_TABLE, desiredChains, renderRuleset } from '../../src/node/nft.js';
import { runner } from './net.js';

export interface NodeReference {
  remove(): Promise<void>;
}

const VXLAN_PORT = 7472;
const VXLAN_OVERHEAD = 50;

async function uplinkMtu(node: LabNode): Promise<number> {
  const r = await runner.run(['ip', '-j', 'link', 'show', 'dev', NODE_UPLINK], { netns: node.netns });
  const [l] = JSON.parse(r.stdout) as Array<{ mtu: number }>;
  if (!l) throw new Error(`${node.netns}: no ${NODE_UPLINK}`);
  return l.mtu;
}

/**
 * Builds the reference for one domain (`vni`) whose members are `pods`, with `group` replicated
 * from every node to every other member node (as the agents would once every member joined it).
 */
export async function buildNodeReference(lab: Lab, pods: readonly LabPod[], vni: number, group: string): Promise<NodeReference> {
  const device = `kmcvx${vni}`;
  const hop = deliveryDevices(vni);
  const nodes = lab.nodes.filter((n) => pods.some((p) => p.node === n.index));
  for (const n of nodes) {
    const others = nodes.filter((o) => o !== n).map((o) => o.underlayIp);
    const members = pods.filter((p) => p.node === n.index).map((p) => podHostLink(podIndex(p)));
    const lines = [
      `link add ${device} type vxlan id ${vni} dstport ${VXLAN_PORT} dev ${NODE_UPLINK} local ${n.underlayIp} nolearning`,
      `link set ${device} addrgenmode none`,
      `link set ${device} mtu ${(await uplinkMtu(n)) - VXLAN_OVERHEAD} up`,
      ...deliveryBuild(hop),
    ];
    await runner.run(['ip', '-batch', '-'], { netns: n.netns, input: `${lines.join('\n')}\n` });
    const entries = [
      ...others.map((dst) => `fdb append 00:00:00:00:00:00 dev ${device} dst ${dst}`),
      ...others.map((dst) => `mdb replace dev ${device} port ${device} grp ${group} permanent dst ${dst}`),
    ];
    await runner.run(['bridge', '-batch', '-'], { netns: n.netns, input: `${entries.join('\n')}\n` });
    await runner.run(['nft', '-f', '-'], { netns: n.netns, input: renderRuleset(desiredChains([{ vni, device, members }])) });
  }
  return {
    async remove(): Promise<void> {
      for (const n of nodes) {
        await runner.run(['nft', 'delete', 'table', 'netdev', NODE_TABLE], { netns: n.netns, allowFail: true });
        for (const d of [device, ...deliveryNames(hop)]) await runner.run(['ip', 'link', 'del', d], { netns: n.netns, allowFail: true });
      }
    },
  };
}
