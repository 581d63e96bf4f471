/**
 * The gateway's inbound path (outside LAN -> member pods) against the LAN's own native bridge and
 * against the same path built by hand, all measured in this scenario on the same lab: an iperf2
 * sender on LAN host h1 and
 *   native:  an iperf2 receiver on LAN host h2, across the LAN switch alone (no kmcast);
 *   gateway: an iperf2 receiver in the member pod on node 2: switch -> node 1's LAN interface ->
 *            the gateway's ingress capture -> one VXLAN copy -> node 2 -> the pod;
 *   local:   an iperf2 receiver in a member pod on the gateway node itself (no VXLAN hop).
 * The gateway and local rows are each measured first on the hand-built path (no agent running:
 * bench/lib/gateway-reference.ts and node-reference.ts), then with the node agents.
 * The switch snoops IGMP with a querier, so each receiver gets the group only after its own (or
 * the gateway's) report: before every trial the switch must list the receiving port.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { addLan, lanMemberships } from '../../src/lab/lan.js';
import { lanHostPort } from '../../src/lab/lan-plan.js';
import { setServiceMembers } from '../../src/lab/lab.js';
import { netnsFetch, startNodeAgent } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabLanNode, LabNode, LabPod } from '../../src/lab/types.js';
import { GATEWAY_TABLE } from '../../src/gateway/nft.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { BenchContext } from '../lib/context.js';
import { BENCH_GROUP, BENCH_PORT, M, MAX_LOSS_PERCENT, measureDataPlane } from '../lib/context.js';
import { buildGatewayReference, lanInRules } from '../lib/gateway-reference.js';
import type { GatewayReference } from '../lib/gateway-reference.js';
import { sampleResources, waitFor } from '../lib/lab.js';
import { iperfTrial, runner } from '../lib/net.js';
import { buildNodeReference, clearNodePath, hostVeth } from '../lib/node-reference.js';
import { findMaxRate, gatewayState } from '../lib/pure.js';
import type { ResultRow } from '../lib/pure.js';
import { SIZES } from './baseline.js';
import { withLab } from './kmcast.js';
import { NODE_DEVICE, NODE_VNI, nodeArgs, nodeMdbDestinations, waitProgrammed } from './node.js';

export const gatewayLabIds = (ctx: BenchContext): string[] => [`${ctx.id}g`];

/** The inbound range the gateway carries (BENCH_GROUP is in it). */
export const GATEWAY_RANGE = '239.255.72.0/24';
/**
 * --gateway-rate: none for the search (so no meter rules either; the total rate follows it, 10x,
 * and the TTL floor is the default 1). The hand-built path is given the same settings.
 */
export const GATEWAY_RATE = 0;
const GATEWAY_RATE_TOTAL = 10 * GATEWAY_RATE;
const GATEWAY_MIN_TTL = 1;

export function gatewayArgs(lan: LabLanNode): string[] {
  return ['--gateway-interface', lan.ifname, '--gateway-group', `${GATEWAY_RANGE}=in`, '--gateway-rate', String(GATEWAY_RATE)];
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
    await waitFor(
      `the gateway to leave ${BENCH_GROUP} after the last trial`,
      async () => {
        const g = await gatewayOf(gwNode);
        return g !== undefined && !g.joined.includes(BENCH_GROUP);
      },
      15_000,
      50,
    );
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
  await setServiceMembers(
    lab,
    members.map((p) => p.ip),
  );
  const agents = await Promise.all(lab.nodes.map((n) => startNodeAgent(lab, n, [...nodeArgs(lab), ...(n === gwNode ? gatewayArgs(gwLan) : [])])));
  try {
    await waitProgrammed(lab, members);
    await waitFor(
      'the gateway to be active with its table installed',
      async () => {
        const g = await gatewayOf(gwNode);
        return g?.active === true && g.installed;
      },
      20_000,
      100,
    );
  } catch (err) {
    await Promise.all(agents.map(async (a) => await a.stop()));
    throw err;
  }
  return agents;
}

/**
 * The same inbound path built by hand (no agent): the domain's devices, entries and node tables
 * for `members`, of which `joined` joined the group (bench/lib/node-reference.ts), plus the
 * gateway node's inbound table and a join of the group on its LAN interface
 * (bench/lib/gateway-reference.ts), with the settings the agent gets (gatewayArgs).
 */
async function buildReference(lab: Lab, gwNode: LabNode, gwLan: LabLanNode, members: readonly LabPod[], joined: readonly LabPod[]): Promise<GatewayReference> {
  const node = await buildNodeReference(lab, members, NODE_VNI, BENCH_GROUP, { extraNodes: [gwNode], joined });
  try {
    const gw = await buildGatewayReference({
      node: gwNode,
      lan: gwLan,
      range: GATEWAY_RANGE,
      group: BENCH_GROUP,
      device: NODE_DEVICE,
      localMembers: members.filter((p) => p.node === gwNode.index).map(hostVeth),
      pods: members.map((p) => p.ip),
      rate: GATEWAY_RATE,
      rateTotal: GATEWAY_RATE_TOTAL,
      minTtl: GATEWAY_MIN_TTL,
    });
    return {
      rules: gw.rules,
      async remove(): Promise<void> {
        await gw.remove();
        await node.remove();
      },
    };
  } catch (err) {
    await node.remove();
    throw err;
  }
}

/**
 * Whether the agent's installed `lan-in` lists the hand-built chain's lines, as a note. Read until
 * they match or for up to 10 s: an agent reports its gateway active (the election) and its table
 * installed (the standby table, without chains) before the pass that installs the chains.
 */
async function sameChain(gwNode: LabNode, what: string, hand: readonly string[]): Promise<string> {
  const read = async (): Promise<string[]> => await lanInRules(gwNode.netns, GATEWAY_TABLE).catch((err: unknown) => [`(not read: ${err instanceof Error ? err.message : String(err)})`]);
  const same = (lines: readonly string[]): boolean => lines.length === hand.length && lines.every((l, k) => l === hand[k]);
  const deadline = Date.now() + 10_000;
  let agent = await read();
  while (!same(agent) && Date.now() < deadline) {
    await sleep(100);
    agent = await read();
  }
  const i = hand.findIndex((l, k) => agent[k] !== l);
  if (i < 0 && agent.length === hand.length) return `${what}: the agent's lan-in chain lists the same ${hand.length} lines as the hand-built one`;
  const k = i < 0 ? hand.length : i;
  return `${what}: the agent's lan-in chain DIFFERS from the hand-built one at line ${k + 1}: agent ${JSON.stringify(agent[k] ?? '(none)')}, hand-built ${JSON.stringify(hand[k] ?? '(none)')}`;
}

/** Search-only measurement of the local rows (64 B to a member pod on the gateway node). */
async function searchLocal(ctx: BenchContext, label: string, sender: string, receiver: string, hooks: { beforeStart?: () => Promise<void>; beforeSend: () => Promise<void> }): Promise<ResultRow> {
  const search = await findMaxRate(
    async (pps) => {
      const t = await iperfTrial({ sender, receivers: [receiver], group: BENCH_GROUP, port: BENCH_PORT, pps, size: 64, seconds: ctx.trialS, ...hooks });
      ctx.progress(`${label}: offered ${pps || 'unlimited'} pps -> sent ${Math.round(t.sentPps)} pps, loss ${t.lossPercent.toFixed(3)}%`);
      return t;
    },
    { maxLossPercent: MAX_LOSS_PERCENT, steps: ctx.quick ? 4 : 5 },
  );
  return {
    label,
    values: {
      [M.unlimitedPps]: Math.round(search.unlimited.sentPps),
      [M.unlimitedLoss]: search.unlimited.lossPercent,
      [M.maxPps]: Math.round(search.maxPps),
      limit: search.senderBound ? 'sender' : 'path/receivers',
    },
  };
}

const VS_HAND = 'vs hand-built';

function withRatio(row: ResultRow, hand: ResultRow | undefined): ResultRow {
  const base = hand?.values[M.maxPps];
  const pps = row.values[M.maxPps];
  return { ...row, values: { ...row.values, [VS_HAND]: typeof base === 'number' && base > 0 && typeof pps === 'number' ? pps / base : null } };
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
    const shapeNotes: string[] = [];
    // The hand-built path is ready when the switch sends the group to node 1's port (its join).
    const handReady = nativeReady(lab, gwLan.port);

    // 1. The LAN itself: h1 -> switch -> h2; no agent runs yet.
    for (const size of SIZES) {
      rows.push(await measureDataPlane(ctx, `native LAN ${size}B`, { sender: h1.netns, receivers: [h2.netns], size, beforeSend: nativeReady(lab, lanHostPort(2)) }));
    }

    // 2. To the only member, a pod on node 2: first by hand, then through the gateway.
    const handRemote = new Map<number, ResultRow>();
    let ref = await buildReference(lab, gwNode, gwLan, [remote], [remote]);
    const remoteRules = ref.rules;
    try {
      for (const size of SIZES) {
        const row = await measureDataPlane(ctx, `hand-built gateway in ${size}B`, { sender: h1.netns, receivers: [remote.netns], size, beforeSend: handReady });
        handRemote.set(size, row);
        rows.push(row);
      }
    } finally {
      await ref.remove();
    }
    const leftBefore = gatewayLeft(gwNode);
    let agents = await startAgents(lab, gwNode, gwLan, [remote]);
    try {
      shapeNotes.push(await sameChain(gwNode, 'member on node 2', remoteRules));
      const ready = gatewayReady(lab, gwNode, gwLan.port, remoteNode);
      for (const size of SIZES) {
        const row = await measureDataPlane(ctx, `gateway in ${size}B`, { sender: h1.netns, receivers: [remote.netns], size, beforeStart: leftBefore, beforeSend: ready });
        rows.push(withRatio(row, handRemote.get(size)));
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
    // The agents keep the domain's devices and node tables over SIGTERM: clear them for the hand-built path.
    await clearNodePath(lab.nodes, NODE_VNI);

    // 3. Local delivery: the receiver is a member pod on the gateway node (search only, 64 B);
    //    node 2's pod is a member too and joins nothing, so node 1 replicates the group nowhere.
    ref = await buildReference(lab, gwNode, gwLan, [local, remote], [local]);
    const localRules = ref.rules;
    let handLocal: ResultRow;
    try {
      handLocal = await searchLocal(ctx, 'hand-built gateway in local 64B', h1.netns, local.netns, { beforeSend: handReady });
    } finally {
      await ref.remove();
    }
    rows.push(handLocal);
    agents = await startAgents(lab, gwNode, gwLan, [local, remote]);
    try {
      shapeNotes.push(await sameChain(gwNode, 'members on nodes 1 and 2', localRules));
      const row = await searchLocal(ctx, 'gateway in local 64B', h1.netns, local.netns, { beforeStart: leftBefore, beforeSend: gatewayReady(lab, gwNode, gwLan.port, undefined) });
      rows.push(withRatio(row, handLocal));
    } finally {
      await Promise.all(agents.map(async (a) => await a.stop()));
    }
    for (const n of shapeNotes) ctx.progress(n);

    return {
      rows,
      notes: [
        `LAN: one switch (a Linux bridge with IGMP snooping and querier) with hosts h1, h2 and node 1's ${gwLan.ifname}; lab: 2 nodes (calico, bridge), node agents ${nodeArgs(lab).join(' ')}, node 1 also ${gatewayArgs(gwLan).join(' ')}`,
        'native LAN: h1 -> switch -> h2, no kmcast; gateway in: h1 -> switch -> node 1 (gateway ingress capture) -> one VXLAN copy -> the member pod on node 2; same iperf2 sender, one receiver each, same search',
        "gateway rows: node 2's pod is the only member, so the gateway makes one copy as the switch does (a member pod on the gateway node would get a copy of every inbound datagram, joined or not); before each trial the gateway has joined the group, the switch lists its port and node 1 has the MDB entry towards node 2",
        '"hand-built": the same path with no agent running, measured just before the agent\'s rows: node 1\'s LAN ingress chain written by hand with the rules of kmcast\'s lan-in (no rate meter: --gateway-rate 0 installs none), a socket joined to the group on its LAN interface, and the domain\'s devices, entries, node tables and underlay filter on both nodes (bench/lib/gateway-reference.ts, node-reference.ts); "vs hand-built" = max pps through the agents / max pps by hand: what the agents cost beside an identical kernel path',
        ...shapeNotes,
        "local: node 1's pod also a member (agents restarted) and the receiver; binary search only, no confirming trial, hand-built the same way",
        "gateway node agent: highest VmRSS and CPU (% of one core) over the send window of one more trial at the 64 B maximum; carried in = its inbound counter for the group over that trial, sent = the iperf2 sender's count",
      ],
    };
  });
}
