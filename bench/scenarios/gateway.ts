/**
 * The gateway's inbound path (outside LAN -> member pods) against the LAN's own native bridge,
 * both measured in this scenario on the same lab: an iperf2 sender on LAN host h1 and
 *   native:  an iperf2 receiver on LAN host h2, across the LAN switch alone (no kmcast);
 *   gateway: an iperf2 receiver in the member pod on node 2: switch -> node 1's LAN interface ->
 *            the gateway's ingress capture -> one VXLAN copy -> node 2 -> the pod;
 *   local:   an iperf2 receiver in a member pod on the gateway node itself (no VXLAN hop).
 * The switch snoops IGMP with a querier, so each receiver gets the group only after its own (or
 * the gateway's) report: before every trial the switch must list the receiving port.
 */
import { addLan, lanMemberships } from '../../src/lab/lan.js';
import { lanHostPort } from '../../src/lab/lan-plan.js';
import { setServiceMembers } from '../../src/lab/lab.js';
import { netnsFetch, startNodeAgent } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabLanNode, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { BenchContext } from '../lib/context.js';
import { BENCH_GROUP, BENCH_PORT, M, MAX_LOSS_PERCENT, measureDataPlane } from '../lib/context.js';
import { sampleResources, waitFor } from '../lib/lab.js';
import { iperfTrial, runner } from '../lib/net.js';
import { findMaxRate, gatewayState } from '../lib/pure.js';
import type { ResultRow } from '../lib/pure.js';
import { SIZES } from './baseline.js';
import { withLab } from './kmcast.js';
import { nodeArgs, nodeMdbDestinations, waitProgrammed } from './node.js';

export const gatewayLabIds = (ctx: BenchContext): string[] => [`${ctx.id}g`];

/** The inbound range the gateway carries (BENCH_GROUP is in it); no rate limit for the search. */
export const GATEWAY_RANGE = '239.255.72.0/24';

export function gatewayArgs(lan: LabLanNode): string[] {
  return ['--gateway-interface', lan.ifname, '--gateway-group', `${GATEWAY_RANGE}=in`, '--gateway-rate', '0'];
}

/** Switch ports the LAN's snooping table lists for `group`. */
async function switchPorts(lab: Lab, group: string): Promise<string[]> {
  return (await lanMemberships(lab, runner)).filter((m) => m.group === group).map((m) => m.port);
}

async function gatewayOf(node: LabNode): Promise<ReturnType<typeof gatewayState>> {
  const r = await netnsFetch(node.netns, '/status', NODE_HTTP_PORT);
  return r.status === 200 ? gatewayState(r.body, BENCH_GROUP) : undefined;
}

/** Native: the switch sends the group to h2's port (h2's own IGMP report arrived). */
function nativeReady(lab: Lab, port: string): () => Promise<void> {
  return async () => {
    await waitFor(`the LAN switch to list ${port} for ${BENCH_GROUP}`, async () => (await switchPorts(lab, BENCH_GROUP)).includes(port), 10_000, 20);
  };
}

/**
 * Gateway, before the receivers start: the previous trial's receiver left and the gateway with it,
 * so the next trial's readiness check sees a fresh join, not one that is about to go.
 */
function gatewayLeft(gwNode: LabNode): () => Promise<void> {
  return async () => {
    await waitFor(`the gateway to leave ${BENCH_GROUP} after the last trial`, async () => {
      const g = await gatewayOf(gwNode);
      return g !== undefined && !g.joined.includes(BENCH_GROUP);
    }, 15_000, 50);
  };
}

/**
 * Gateway, before the sender starts: the gateway joined the group on the LAN (its /status), the
 * switch lists the gateway node's port for it, and, for a receiver on another node, the gateway
 * node replicates the group to that node (an MDB entry on the domain's VXLAN device).
 */
function gatewayReady(lab: Lab, gwNode: LabNode, gwPort: string, remote: LabNode | undefined): () => Promise<void> {
  return async () => {
    await waitFor(`the gateway to join ${BENCH_GROUP} on the LAN`, async () => (await gatewayOf(gwNode))?.joined.includes(BENCH_GROUP) === true, 15_000, 20);
    await waitFor(`the LAN switch to list ${gwPort} for ${BENCH_GROUP}`, async () => (await switchPorts(lab, BENCH_GROUP)).includes(gwPort), 10_000, 20);
    if (remote) {
      await waitFor(`MDB entry on ${gwNode.netns} towards ${remote.underlayIp}`, async () => (await nodeMdbDestinations(gwNode, BENCH_GROUP)).includes(remote.underlayIp), 10_000, 20);
    }
  };
}

/** Node agents on every node, the gateway flags on `gwNode`; waits until `members` are programmed and the gateway is active. */
async function startAgents(lab: Lab, gwNode: LabNode, gwLan: LabLanNode, members: readonly LabPod[]): Promise<NodeAgentHandle[]> {
  await setServiceMembers(lab, members.map((p) => p.ip));
  const agents = await Promise.all(lab.nodes.map((n) => startNodeAgent(lab, n, [...nodeArgs(lab), ...(n === gwNode ? gatewayArgs(gwLan) : [])])));
  try {
    await waitProgrammed(lab, members);
    await waitFor('the gateway to be active with its table installed', async () => {
      const g = await gatewayOf(gwNode);
      return g?.active === true && g.installed;
    }, 20_000, 100);
  } catch (err) {
    await Promise.all(agents.map(async (a) => await a.stop()));
    throw err;
  }
  return agents;
}

export async function gatewayIn(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const [id] = gatewayLabIds(ctx);
  return await withLab(id!, ['calico', 'bridge'], 1, async (lab) => {
    const lan = await addLan(lab, runner, { nodes: [1], hosts: 2 });
    const [h1, h2] = lan.hosts;
    const gwLan = lan.nodes[0];
    if (!h1 || !h2 || !gwLan) throw new Error('LAN without two hosts and a node');
    const gwNode = lab.nodes.find((n) => n.index === gwLan.node)!;
    const remoteNode = lab.nodes.find((n) => n !== gwNode)!;
    const local = lab.pods.find((p) => p.node === gwNode.index);
    const remote = lab.pods.find((p) => p.node === remoteNode.index);
    if (!local || !remote) throw new Error('lab without a pod on each node');
    const rows: ResultRow[] = [];

    // 1. The LAN itself: h1 -> switch -> h2; no agent runs yet.
    for (const size of SIZES) {
      rows.push(await measureDataPlane(ctx, `native LAN ${size}B`, { sender: h1.netns, receivers: [h2.netns], size, beforeSend: nativeReady(lab, lanHostPort(2)) }));
    }

    // 2. Through the gateway to the only member, a pod on node 2.
    const leftBefore = gatewayLeft(gwNode);
    let agents = await startAgents(lab, gwNode, gwLan, [remote]);
    try {
      const ready = gatewayReady(lab, gwNode, gwLan.port, remoteNode);
      for (const size of SIZES) {
        rows.push(await measureDataPlane(ctx, `gateway in ${size}B`, { sender: h1.netns, receivers: [remote.netns], size, beforeStart: leftBefore, beforeSend: ready }));
      }
      // The gateway node agent while it carries the 64 B maximum (it only joins and counts: the
      // kernel forwards), sampled over the send window of one more trial.
      const max = rows.find((r) => r.label === 'gateway in 64B')?.values[M.maxPps];
      const pid = agents.find((a) => a.node === gwNode)?.child.pid;
      if (typeof max === 'number' && max > 0 && pid !== undefined) {
        const before = (await gatewayOf(gwNode))?.inbound ?? 0;
        let sampling: ReturnType<typeof sampleResources> | undefined;
        const t = await iperfTrial({
          sender: h1.netns,
          receivers: [remote.netns],
          group: BENCH_GROUP,
          port: BENCH_PORT,
          pps: max,
          size: 64,
          seconds: ctx.trialS,
          beforeStart: leftBefore,
          beforeSend: async () => {
            await ready();
            sampling = sampleResources(pid, ctx.trialS * 1000);
          },
        });
        const r = await sampling!;
        const after = await gatewayOf(gwNode);
        const mb = (v: number | null): number | null => (v === null ? null : v / 2 ** 20);
        rows.push({
          label: 'gateway node agent at the 64B max',
          values: { 'RSS MB': mb(r.rssMaxBytes), 'CPU %': r.cpuPercent, 'carried in': (after?.inbound ?? 0) - before, sent: t.sent },
        });
        ctx.progress(`gateway agent: RSS ${mb(r.rssBytes)?.toFixed(1)} MB, CPU ${r.cpuPercent?.toFixed(1)}%, carried ${(after?.inbound ?? 0) - before} of ${t.sent} sent`);
      }
    } finally {
      await Promise.all(agents.map(async (a) => await a.stop()));
    }

    // 3. Local delivery: the receiver is a member pod on the gateway node (search only, 64 B).
    agents = await startAgents(lab, gwNode, gwLan, [local, remote]);
    try {
      const search = await findMaxRate(
        async (pps) => {
          const t = await iperfTrial({ sender: h1.netns, receivers: [local.netns], group: BENCH_GROUP, port: BENCH_PORT, pps, size: 64, seconds: ctx.trialS, beforeStart: leftBefore, beforeSend: gatewayReady(lab, gwNode, gwLan.port, undefined) });
          ctx.progress(`gateway in local 64B: offered ${pps || 'unlimited'} pps -> sent ${Math.round(t.sentPps)} pps, loss ${t.lossPercent.toFixed(3)}%`);
          return t;
        },
        { maxLossPercent: MAX_LOSS_PERCENT, steps: ctx.quick ? 4 : 5 },
      );
      rows.push({
        label: 'gateway in local 64B',
        values: {
          [M.unlimitedPps]: Math.round(search.unlimited.sentPps),
          [M.unlimitedLoss]: search.unlimited.lossPercent,
          [M.maxPps]: Math.round(search.maxPps),
          limit: search.senderBound ? 'sender' : 'path/receivers',
        },
      });
    } finally {
      await Promise.all(agents.map(async (a) => await a.stop()));
    }

    return {
      rows,
      notes: [
        `LAN: one switch (a Linux bridge with IGMP snooping and querier) with hosts h1, h2 and node 1's ${gwLan.ifname}; lab: 2 nodes (calico, bridge), node agents ${nodeArgs(lab).join(' ')}, node 1 also ${gatewayArgs(gwLan).join(' ')}`,
        'native LAN: h1 -> switch -> h2, no kmcast; gateway in: h1 -> switch -> node 1 (gateway ingress capture) -> one VXLAN copy -> the member pod on node 2; same iperf2 sender, one receiver each, same search',
        'gateway rows: node 2\'s pod is the only member, so the gateway makes one copy as the switch does (a member pod on the gateway node would get a copy of every inbound datagram, joined or not); before each trial the gateway has joined the group, the switch lists its port and node 1 has the MDB entry towards node 2',
        'local: node 1\'s pod also a member (agents restarted) and the receiver; binary search only, no confirming trial',
        'gateway node agent: highest VmRSS and CPU (% of one core) over the send window of one more trial at the 64 B maximum; carried in = its inbound counter for the group over that trial, sent = the iperf2 sender\'s count',
      ],
    };
  });
}
