/**
 * Node mode (`kmcast node`): one agent per node namespace, pods hold no agent. Measured against
 * baselines taken in the same run: the native bridge (1 to 3) and sidecar selective replication
 * on the same lab (fan-out), plus the node agent's own resources with 50 local member pods.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { addPod, setServiceMembers } from '../../src/lab/lab.js';
import { netnsFetch, startNodeAgent } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT, podStatusPath } from '../../src/node/api.js';
import type { PodProgramStatus } from '../../src/node/api.js';
import type { BenchContext } from '../lib/context.js';
import { BENCH_GROUP, BENCH_PORT, M, measureDataPlane } from '../lib/context.js';
import { buildNodeReference } from '../lib/node-reference.js';
import { benchAgentArgs, mdbDestinations, mdbDestinationsIn, sampleResources, startAgents, stopAgents, waitFor, waitReady } from '../lib/lab.js';
import { withLab } from './kmcast.js';
import { readFile } from 'node:fs/promises';
import { iperfTrial, runner, spawnIn, stop } from '../lib/net.js';
import { findMaxRate, parseVmRssBytes } from '../lib/pure.js';
import type { ResultRow } from '../lib/pure.js';
import { SIZES } from './baseline.js';

export const NODE_VNI = 100;
export const NODE_DEVICE = `kmcvx${NODE_VNI}`;

export const nodeLabIds = (ctx: BenchContext): string[] => ['na', 'nf', 'nr', 'n6'].map((s) => `${ctx.id}${s}`);

/** Production timers (heartbeat 1 s, expiry 5), info logs; the lab's Service is the one domain. */
export function nodeArgs(lab: Lab): string[] {
  return ['--service', `${lab.spec.service}=${NODE_VNI}`, '--log-level', 'info'];
}

async function startNodeAgents(lab: Lab, nodes: readonly LabNode[] = lab.nodes): Promise<NodeAgentHandle[]> {
  return await Promise.all(nodes.map((n) => startNodeAgent(lab, n, nodeArgs(lab))));
}

async function stopNodeAgents(agents: readonly NodeAgentHandle[]): Promise<void> {
  await Promise.all(agents.map(async (a) => await a.stop()));
}

/** Every member pod reported programmed by the agent on its node (what `kmcast wait` waits for). */
export async function waitProgrammed(lab: Lab, pods: readonly LabPod[], timeoutMs = 60_000): Promise<number> {
  const nodeOf = (p: LabPod): LabNode => lab.nodes.find((n) => n.index === p.node)!;
  return await waitFor(
    `${pods.length} member pods programmed by their node agents`,
    async () => {
      for (const p of pods) {
        const r = await netnsFetch(nodeOf(p).netns, podStatusPath(p.ip), NODE_HTTP_PORT);
        if (r.status !== 200 || !(JSON.parse(r.body) as PodProgramStatus).programmed) return false;
      }
      return true;
    },
    timeoutMs,
    250,
  );
}

/** MDB destinations for `group` on a node's domain device. */
export async function nodeMdbDestinations(node: LabNode, group: string): Promise<string[]> {
  return await mdbDestinationsIn(node.netns, NODE_DEVICE, group);
}

/** Node mode is ready to send when the sender's node replicates the group to every other member node. */
function nodeSelectiveReady(lab: Lab, sender: LabPod, receivers: readonly LabPod[], group: string = BENCH_GROUP): () => Promise<void> {
  const senderNode = lab.nodes.find((n) => n.index === sender.node)!;
  const want = [...new Set(receivers.filter((r) => r.node !== sender.node).map((r) => lab.nodes.find((n) => n.index === r.node)!.underlayIp))];
  return async () => {
    await waitFor(
      `MDB entries on ${senderNode.netns} towards ${want.length} member nodes`,
      async () => {
        const d = await nodeMdbDestinations(senderNode, group);
        return want.every((ip) => d.includes(ip));
      },
      15_000,
      20,
    );
  };
}

/** Node mode's sizes: the baseline's, and 1472 B (pod MTU = node MTU: the VXLAN packet is fragmented). */
export const NODE_SIZES = [...SIZES, 1472] as const;

export async function nodeOneToThree(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const [id] = nodeLabIds(ctx);
  return await withLab(id!, ['calico', 'bridge', 'calico', 'bridge'], 1, async (lab) => {
    const [sender, ...receivers] = lab.pods;
    if (!sender) throw new Error('lab has no pods');
    const rows: ResultRow[] = [];
    // The same data path built by hand first (no agent), in the same lab and run.
    const reference = new Map<number, number>();
    const ref = await buildNodeReference(lab, lab.pods, NODE_VNI, BENCH_GROUP);
    try {
      for (const size of NODE_SIZES) {
        const row = await measureDataPlane(ctx, `hand-built node path ${size}B`, { sender: sender.netns, receivers: receivers.map((r) => r.netns), size });
        reference.set(size, Number(row.values[M.maxPps] ?? 0));
        rows.push(row);
      }
    } finally {
      await ref.remove();
    }
    await setServiceMembers(
      lab,
      lab.pods.map((p) => p.ip),
    );
    const agents = await startNodeAgents(lab);
    try {
      const took = await waitProgrammed(lab, lab.pods);
      ctx.progress(`node 1to3: 4 pods programmed ${(took / 1000).toFixed(1)} s after the node agents started`);
      for (const size of NODE_SIZES) {
        const row = await measureDataPlane(ctx, `node mode ${size}B`, { sender: sender.netns, receivers: receivers.map((r) => r.netns), size, beforeSend: nodeSelectiveReady(lab, sender, receivers) });
        const base = reference.get(size) ?? 0;
        const pps = Number(row.values[M.maxPps] ?? 0);
        rows.push({ ...row, values: { ...row.values, 'vs hand-built': base > 0 ? pps / base : null } });
      }
    } finally {
      await stopNodeAgents(agents);
    }
    return {
      rows,
      notes: [
        'lab: 4 nodes (calico, bridge, calico, bridge), 1 pod each, one kmcast node agent per node namespace (no agent in any pod); sender on node 1, receivers on nodes 2-4',
        'the pods join and send on eth0 as if on a LAN: iperf2 as in the baseline, no interface named',
        '"hand-built node path": the same VXLAN devices, entries, delivery hop, nftables node table and underlay filter written with ip/bridge/nft and no agent running (bench/lib/node-reference.ts); "vs hand-built" = node mode max pps / hand-built max pps at the same size: what the agent itself costs (target >= 0.95)',
        '1472 B: pod MTU = node MTU = 1500, so each VXLAN packet is IP-fragmented on the underlay and reassembled on the receiving node (the case docs/kernel-notes.md describes)',
      ],
    };
  });
}

/** The IPv6 group of the IPv6 rows: site scope, so it gets MDB entries like BENCH_GROUP. */
export const BENCH_GROUP6 = 'ff05::72:1';
/** IPv4 and IPv6 sizes compared row by row: the same UDP payloads, and each family's largest that fits the pod MTU unfragmented at the pod (1472, 1452). */
export const NODE_V6_SIZES: readonly (readonly [number, number])[] = [
  [64, 64],
  [1200, 1200],
  [1472, 1452],
];

/**
 * Node mode over IPv6 against node mode over IPv4, on one dual-stack lab, same agents, same run:
 * 1 sender -> 3 receivers on other nodes. Target: IPv6 within 10% of IPv4.
 */
export async function nodeOneToThreeV6(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const id = nodeLabIds(ctx)[3]!;
  return await withLab(
    id,
    ['calico', 'bridge', 'calico', 'bridge'],
    1,
    async (lab) => {
      const [sender, ...receivers] = lab.pods;
      if (!sender) throw new Error('lab has no pods');
      const rows: ResultRow[] = [];
      await setServiceMembers(
        lab,
        lab.pods.flatMap((p) => [p.ip, ...(p.ip6 ? [p.ip6] : [])]),
      );
      const agents = await startNodeAgents(lab);
      try {
        await waitProgrammed(lab, lab.pods);
        for (const [v4, v6] of NODE_V6_SIZES) {
          const a = await measureDataPlane(ctx, `node mode IPv4 ${v4}B`, {
            sender: sender.netns,
            receivers: receivers.map((r) => r.netns),
            size: v4,
            beforeSend: nodeSelectiveReady(lab, sender, receivers),
          });
          const b = await measureDataPlane(ctx, `node mode IPv6 ${v6}B`, {
            sender: sender.netns,
            receivers: receivers.map((r) => r.netns),
            size: v6,
            group6: BENCH_GROUP6,
            beforeSend: nodeSelectiveReady(lab, sender, receivers, BENCH_GROUP6),
          });
          const pa = Number(a.values[M.maxPps] ?? 0);
          const pb = Number(b.values[M.maxPps] ?? 0);
          rows.push(a, { ...b, values: { ...b.values, 'IPv6 / IPv4': pa > 0 ? pb / pa : null } });
        }
      } finally {
        await stopNodeAgents(agents);
      }
      return {
        rows,
        notes: [
          'lab: dual-stack, 4 nodes (calico, bridge, calico, bridge), 1 pod each, IPv4 underlay; one kmcast node agent per node; sender on node 1, receivers on nodes 2-4',
          `iperf2 with -V for IPv6: receivers bind and join ${BENCH_GROUP6}, the sender sends to it; the IPv4 rows use ${BENCH_GROUP}, measured in the same lab with the same agents just before each IPv6 row`,
          '"IPv6 / IPv4" = IPv6 max pps / IPv4 max pps at the same UDP payload (the last pair: each family at 1500 B packets, which the underlay fragments): target >= 0.9',
        ],
      };
    },
    { ipv6: true },
  );
}

export const NODE_FANOUT_NODES = 4;
export const NODE_FANOUT_PER_NODE = 10;

/**
 * 1 sender and 40 receivers, 10 per node on 4 nodes (the sender is an 11th pod on node 1): node
 * mode (3 VXLAN copies + 10 local copies per datagram) against sidecar selective replication
 * (40 VXLAN copies from the sender pod), same lab, same run.
 */
export async function nodeFanOut(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const id = nodeLabIds(ctx)[1]!;
  const perNode = ctx.quick ? 3 : NODE_FANOUT_PER_NODE;
  return await withLab(id, ['calico', 'bridge', 'calico', 'bridge'], perNode, async (lab) => {
    const sender = await addPod(lab, 1, runner);
    const receivers = lab.pods.filter((p) => p !== sender);
    const members = [sender, ...receivers];
    const n = receivers.length;
    const search = async (label: string, beforeSend: () => Promise<void>): Promise<number> => {
      const r = await findMaxRate(
        async (pps) => {
          const t = await iperfTrial({ sender: sender.netns, receivers: receivers.map((p) => p.netns), group: BENCH_GROUP, port: BENCH_PORT, pps, size: 64, seconds: ctx.trialS, beforeSend });
          ctx.progress(`node fan-out ${label}: offered ${pps || 'unlimited'} -> sent ${Math.round(t.sentPps)} pps, worst loss ${t.lossPercent.toFixed(3)}%`);
          return t;
        },
        { maxLossPercent: 0.1, steps: ctx.quick ? 4 : 5 },
      );
      return Math.round(r.maxPps);
    };

    await setServiceMembers(
      lab,
      members.map((p) => p.ip),
    );
    const nodeAgents = await startNodeAgents(lab);
    let nodePps: number;
    try {
      await waitProgrammed(lab, members, 120_000);
      nodePps = await search('node mode', nodeSelectiveReady(lab, sender, receivers));
    } finally {
      await stopNodeAgents(nodeAgents);
    }
    // The node agents stopped (SIGTERM: LEAVE, capture removed): the sidecar owns the pods now.
    const sidecars = await startAgents(lab, members, benchAgentArgs('selective'));
    let sidecarPps: number;
    try {
      await waitReady(lab, members, 120_000);
      sidecarPps = await search('sidecar selective', async () => {
        await waitFor(
          `sidecar MDB entries towards ${n} receivers`,
          async () => {
            const d = await mdbDestinations(sender, BENCH_GROUP);
            return receivers.every((r) => d.includes(r.ip));
          },
          30_000,
          50,
        );
      });
    } finally {
      await stopAgents(sidecars);
    }
    return {
      rows: [
        {
          label: `1 sender -> ${n} receivers (${perNode} per node, ${NODE_FANOUT_NODES} nodes)`,
          values: {
            'node mode max pps': nodePps,
            'sidecar selective max pps': sidecarPps,
            'node / sidecar': sidecarPps > 0 ? nodePps / sidecarPps : null,
            'VXLAN copies node': NODE_FANOUT_NODES - 1,
            'VXLAN copies sidecar': n,
          },
        },
      ],
      notes: [
        `64 B, max pps under 0.1% loss at the worst of ${n} iperf2 receivers (binary search); the sender is an extra pod on node 1`,
        "node mode: the sender's node sends one VXLAN copy per other member node and copies locally to the node's own members; sidecar: one VXLAN copy per receiving pod from the sender pod",
        'both are bounded by the same 2 cores running all receivers, so the ratio understates the sender-side saving',
      ],
    };
  });
}

export const NODE_RESOURCE_PODS = 50;

/** The node agent's RSS and CPU with 50 local member pods, each with one joined group, and one peer node. */
export async function nodeResources(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const id = nodeLabIds(ctx)[2]!;
  return await withLab(id, ['calico', 'bridge'], 1, async (lab) => {
    const local: LabPod[] = [lab.pods.find((p) => p.node === 1)!];
    while (local.length < NODE_RESOURCE_PODS) local.push(await addPod(lab, 1, runner));
    const remote = lab.pods.filter((p) => p.node === 2);
    await setServiceMembers(
      lab,
      [...local, ...remote].map((p) => p.ip),
    );
    const windowMs = ctx.quick ? 2000 : 5000;
    const rows: ResultRow[] = [];
    // One joined group per local pod (iperf2 receivers stay joined for the whole measurement).
    const joiners = local.map((p, i) => ({ pod: p, group: `239.255.73.${1 + (i % 250)}` }));
    const procs = joiners.map((j) => spawnIn(j.pod.netns, ['iperf', '-s', '-u', '-B', j.group, '-p', String(BENCH_PORT)]));
    const agents = await startNodeAgents(lab);
    try {
      const took = await waitProgrammed(lab, [...local, ...remote], 120_000);
      ctx.progress(`node resources: ${local.length} local member pods programmed ${(took / 1000).toFixed(1)} s after start`);
      const agent = agents[0]!;
      const pid = agent.child.pid;
      if (pid === undefined) throw new Error('node agent has no pid');
      await sleep(ctx.quick ? 1000 : 3000);
      const r = await sampleResources(pid, windowMs);
      const children = await childResources(pid);
      const mb = (v: number | null): number | null => (v === null ? null : v / 2 ** 20);
      rows.push({
        label: `${local.length} local member pods, 1 peer node`,
        values: {
          'RSS MB': mb(r.rssBytes),
          'RSS max MB': mb(r.rssMaxBytes),
          'CPU %': r.cpuPercent,
          'child processes': children.count,
          'children RSS MB': mb(children.rssBytes),
          'took s': took / 1000,
        },
      });
    } finally {
      await stopNodeAgents(agents);
      await Promise.all(procs.map((p) => stop(p, 'SIGKILL', 500)));
    }
    return {
      rows,
      notes: [
        `the node agent of node 1 with ${NODE_RESOURCE_PODS} member pods on its node, each with an iperf2 receiver joined to its own group, and one member pod on a peer node; production timers, info logs`,
        `RSS = VmRSS of the agent (end of a ${windowMs / 1000} s window, and the highest of 250 ms samples), CPU = utime+stime over the window (% of one core); children = the agent's helper processes (per-pod join monitors), counted apart`,
      ],
    };
  });
}

/** Number and summed VmRSS of a process's direct children (from /proc/<pid>/task/<pid>/children). */
async function childResources(pid: number): Promise<{ count: number; rssBytes: number | null }> {
  const ids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean);
  let sum = 0;
  for (const c of ids) sum += parseVmRssBytes(await readFile(`/proc/${c}/status`, 'utf8').catch(() => '')) ?? 0;
  return { count: ids.length, rssBytes: ids.length ? sum : null };
}
