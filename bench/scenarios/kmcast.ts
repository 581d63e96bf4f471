/**
 * kmcast data plane, control plane and agent resources, in labs (simulated clusters).
 *
 * Flood mode: the agent has no switch to turn selective replication off, so the bench makes the
 * sender's overlay flood the way a fallback (iproute2 < 6.3) or `--unregistered flood` does: all
 * agents run with `--unregistered flood` (no catch-all drop entry), and the sender's agent is
 * frozen (SIGSTOP) while no receiver has joined, so its vx0 holds the all-zero flood entries to
 * every peer and no MDB entry for the group: every datagram is copied to every peer. The other
 * agents run with a huge --peer-expiry so they keep the frozen sender as a peer.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentHandle } from '../../src/lab/process.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import type { ProbeReport } from '../../src/probe/report.js';
import type { BenchContext } from '../lib/context.js';
import { BENCH_GROUP, BENCH_PORT, measureDataPlane } from '../lib/context.js';
import { BENCH_AGENT_ARGS, buildLab, floodPeers, mdbDestinations, removeLab, sampleResources, startAgents, stopAgents, waitFor, waitReady } from '../lib/lab.js';
import { findMaxRate, pct } from '../lib/pure.js';
import type { ResultRow } from '../lib/pure.js';
import { iperfTrial, run, spawnIn, stop } from '../lib/net.js';
import { KMCAST_MAIN } from '../../src/lab/process.js';
import { SIZES } from './baseline.js';

export const labIds = (ctx: BenchContext): string[] => ['a', 'f', 'c', 'r'].map((s) => `${ctx.id}${s}`);

async function withLab<T>(id: string, nodes: Lab['spec']['nodes'], podsPerNode: number, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await buildLab(id, nodes, podsPerNode);
  try {
    return await fn(lab);
  } finally {
    await removeLab(id);
  }
}

async function converge(sender: LabPod, peers: number): Promise<void> {
  await waitFor(`${peers} flood entries on the sender`, async () => (await floodPeers(sender)).length >= peers, 30_000);
}

/** Selective: MDB entries for the group towards every receiver are in place. */
function selectiveReady(sender: LabPod, receivers: readonly LabPod[]): () => Promise<void> {
  return async () => {
    await waitFor('MDB entries towards every receiver', async () => {
      const d = await mdbDestinations(sender, BENCH_GROUP);
      return receivers.every((r) => d.includes(r.ip));
    }, 10_000, 20);
  };
}

/** Flood: the frozen sender has no MDB entry for the group (everything follows the flood list). */
function floodReady(sender: LabPod): () => Promise<void> {
  return async () => {
    const d = await mdbDestinations(sender, BENCH_GROUP);
    if (d.length > 0) throw new Error(`flood mode: the sender still has MDB entries for ${BENCH_GROUP}: ${d.join(' ')}`);
  };
}

async function freeze(agent: AgentHandle, sender: LabPod): Promise<void> {
  // Freeze only once the sender's MDB for the group is empty (every receiver left).
  await waitFor('the sender MDB for the group to empty', async () => (await mdbDestinations(sender, BENCH_GROUP)).length === 0, 15_000);
  if (agent.child.pid !== undefined) process.kill(agent.child.pid, 'SIGSTOP');
}

function thaw(agent: AgentHandle): void {
  if (agent.child.pid !== undefined) process.kill(agent.child.pid, 'SIGCONT');
}

export async function oneToThree(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const [id] = labIds(ctx);
  return await withLab(id!, ['calico', 'bridge', 'calico', 'bridge'], 1, async (lab) => {
    const [sender, ...receivers] = lab.pods;
    if (!sender) throw new Error('lab has no pods');
    const agents = await startAgents(lab, lab.pods, BENCH_AGENT_ARGS);
    try {
      await waitReady(lab, lab.pods);
      await converge(sender, receivers.length);
      const rows: ResultRow[] = [];
      const recvNs = receivers.map((r) => r.netns);
      for (const size of SIZES) {
        rows.push(await measureDataPlane(ctx, `kmcast selective ${size}B`, { sender: sender.netns, receivers: recvNs, size, beforeSend: selectiveReady(sender, receivers) }));
      }
      await freeze(agents[0]!, sender);
      try {
        for (const size of SIZES) {
          rows.push(await measureDataPlane(ctx, `kmcast flood ${size}B`, { sender: sender.netns, receivers: recvNs, size, beforeSend: floodReady(sender) }));
        }
      } finally {
        thaw(agents[0]!);
      }
      return {
        rows,
        notes: [
          `lab: 4 nodes (calico, bridge, calico, bridge), 1 pod each; sender on node 1, receivers on nodes 2-4; agents ${BENCH_AGENT_ARGS.join(' ')}`,
          'with 3 receivers among 4 members, flood and selective make the same 3 copies: the difference shows in the fan-out scenario',
          'relay mode: not implemented in kmcast yet, so not measured',
        ],
      };
    } finally {
      await stopAgents(agents);
    }
  });
}

export const FANOUT_SIZES = [2, 5, 10, 20] as const;
/** --quick keeps the run near two minutes: the smallest and the 10-member (target) case. */
export const FANOUT_QUICK = [2, 10] as const;

export async function fanOut(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const id = labIds(ctx)[1]!;
  // 5 nodes x 4 pods; members are taken round-robin over the nodes so they sit on different nodes.
  return await withLab(id, ['calico', 'bridge', 'calico', 'bridge', 'calico'], 4, async (lab) => {
    const byNode = [1, 2, 3, 4, 5].map((n) => lab.pods.filter((p) => p.node === n));
    const order: LabPod[] = [];
    for (let k = 0; k < 4; k++) for (const node of byNode) if (node[k]) order.push(node[k]);
    const rows: ResultRow[] = [];
    for (const n of ctx.quick ? FANOUT_QUICK : FANOUT_SIZES) {
      const members = order.slice(0, n);
      const [sender, receiver] = members;
      if (!sender || !receiver) throw new Error(`fan-out ${n}: not enough pods`);
      const agents = await startAgents(lab, members, BENCH_AGENT_ARGS);
      try {
        await waitReady(lab, members, 60_000);
        await converge(sender, n - 1);
        const measure = async (mode: string, beforeSend: () => Promise<void>): Promise<number> => {
          const r = await findMaxRate(
            async (pps) => {
              const t = await iperfTrial({ sender: sender.netns, receivers: [receiver.netns], group: BENCH_GROUP, port: BENCH_PORT, pps, size: 64, seconds: ctx.trialS, beforeSend });
              ctx.progress(`fan-out ${n} ${mode}: offered ${pps || 'unlimited'} -> sent ${Math.round(t.sentPps)} pps, loss ${t.lossPercent.toFixed(3)}%`);
              return t;
            },
            { maxLossPercent: 0.1, steps: 4 },
          );
          return Math.round(r.maxPps);
        };
        const selective = await measure('selective', selectiveReady(sender, [receiver]));
        await freeze(agents[0]!, sender);
        let flood: number;
        try {
          flood = await measure('flood', floodReady(sender));
        } finally {
          thaw(agents[0]!);
        }
        rows.push({ label: `1 of ${n} members`, values: { 'selective max pps': selective, 'flood max pps': flood, 'copies flood': n - 1, 'selective / flood': flood > 0 ? selective / flood : null } });
      } finally {
        await stopAgents(agents);
      }
    }
    return {
      rows,
      notes: [
        '64 B, 1 sender and 1 receiver (on another node) among N member pods; max pps under 0.1% loss (binary search)',
        'flood: the sender copies every datagram to all N-1 peers; selective: one MDB copy to the receiver',
      ],
    };
  });
}

function parseProbe(out: string): ProbeReport | undefined {
  try {
    return JSON.parse(out) as ProbeReport;
  } catch {
    return undefined;
  }
}

const probeArgv = (args: readonly string[]): string[] => [process.execPath, KMCAST_MAIN, 'probe', '--json', '--group', `${BENCH_GROUP}:5301`, ...args];

export async function controlPlane(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const id = labIds(ctx)[2]!;
  return await withLab(id, ['calico', 'bridge'], 1, async (lab) => {
    const [a, b] = lab.pods;
    if (!a || !b) throw new Error('lab has no pods');
    const rows: ResultRow[] = [];
    const notes: string[] = [];
    const args = ['--log-level', 'info'];
    // 1. Agent start to first delivery: receiver B (agent ready, probe joined) waits; sender A
    // sends 1000 pps from before its agent exists; t0 = A's agent start.
    const [agentB] = await startAgents(lab, [b], args, [a, b]);
    let agentA: AgentHandle | undefined;
    try {
      await waitReady(lab, [b]);
      const recv = spawnIn(b.netns, probeArgv(['--receive-only', '--rate', '1000', '--count', '20000', '--wait', '0']));
      await waitFor('the receiver probe to join', async () => (await run(['ip', 'maddr', 'show', 'dev', 'vx0'], b.netns)).includes(BENCH_GROUP), 10_000, 50);
      const send = spawnIn(a.netns, probeArgv(['--send-only', '--rate', '1000', '--count', '20000']));
      await sleep(300);
      const t0 = Date.now();
      [agentA] = await startAgents(lab, [a], args, [a, b]);
      try {
        await waitFor('A to replicate to B', async () => (await mdbDestinations(a, BENCH_GROUP)).includes(b.ip), 10_000, 20).catch(() => undefined);
        await sleep(1000);
      } finally {
        await stop(send, 'SIGINT');
        await stop(recv, 'SIGINT');
      }
      const first = parseProbe(recv.out)?.senders.find((s) => s.address === a.ip)?.firstAt ?? null;
      const delivery = first === null ? null : first - t0;
      rows.push({ label: 'agent start -> first delivery', values: { 'ms (p50)': delivery, samples: delivery === null ? 0 : 1 } });
      if (delivery === null) notes.push(`no delivery seen; receiver output: ${recv.out.slice(0, 300)} ${recv.err.slice(0, 300)}`);
      notes.push('start -> first delivery: t0 = spawn of the sender pod\'s agent (node startup included), end = first datagram at the receiver (same clock)');

      // 2. Join latency: A sends at 100 pps; B's probe joins, reports join -> first datagram, leaves.
      const joins = ctx.quick ? 10 : 50;
      const sender100 = spawnIn(a.netns, probeArgv(['--send-only', '--rate', '100', '--count', '1000000']));
      const latencies: number[] = [];
      try {
        await sleep(500);
        for (let i = 0; i < joins; i++) {
          const p = spawnIn(b.netns, probeArgv(['--receive-only', '--rate', '100', '--count', '50', '--wait', '0']));
          await p.exited;
          const jl = parseProbe(p.out)?.senders.find((s) => s.address === a.ip)?.joinLatencyMs;
          if (typeof jl === 'number') latencies.push(jl);
          await sleep(100);
        }
      } finally {
        await stop(sender100, 'SIGINT');
      }
      rows.push({ label: `join latency (${joins} joins, 100 pps)`, values: { 'ms (p50)': pct(latencies, 50), 'p99 ms': pct(latencies, 99), 'max ms': latencies.length ? Math.max(...latencies) : null, samples: latencies.length } });
      notes.push('join latency = first datagram - join, measured by the receiving probe; includes up to 10 ms of sender spacing at 100 pps');

      // 3. Dead peer: SIGKILL B's agent; time until A's vx0 drops B's flood entry.
      await waitFor('A to list B as a flood peer', async () => (await floodPeers(a)).includes(b.ip), 20_000);
      if (agentB?.child.pid !== undefined) process.kill(agentB.child.pid, 'SIGKILL');
      const detect = await waitFor('A to purge dead peer B', async () => !(await floodPeers(a)).includes(b.ip), 30_000, 50).catch(() => null);
      rows.push({ label: 'dead peer purged (SIGKILL)', values: { 'ms (p50)': detect, samples: detect === null ? 0 : 1 } });
      notes.push('dead peer: agent defaults (heartbeat 1 s, expiry 5 heartbeats); time from SIGKILL of the peer agent to its flood entry leaving vx0');
    } finally {
      await stopAgents([...(agentB ? [agentB] : []), ...(agentA ? [agentA] : [])]);
    }
    return { rows, notes };
  });
}

export const RESOURCE_PEERS = 50;

export async function resources(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const id = labIds(ctx)[3]!;
  // 51 pods (3 nodes x 17): the measured agent plus 50 live peers, each running its own agent.
  return await withLab(id, ['calico', 'bridge', 'calico'], 17, async (lab) => {
    const [a, b, ...rest] = lab.pods;
    if (!a || !b) throw new Error('lab has no pods');
    const windowMs = ctx.quick ? 2000 : 5000;
    const rows: ResultRow[] = [];
    const sample = async (label: string, agent: AgentHandle): Promise<void> => {
      const pid = agent.child.pid;
      if (pid === undefined) throw new Error('agent has no pid');
      const r = await sampleResources(pid, windowMs);
      const entries = (await floodPeers(a)).length;
      rows.push({ label, values: { 'RSS MB': r.rssBytes === null ? null : r.rssBytes / 2 ** 20, 'CPU %': r.cpuPercent, 'flood entries': entries } });
    };
    const args = ['--log-level', 'info'];
    const agents = await startAgents(lab, [a, b], args, lab.pods.slice(0, 2));
    try {
      await waitReady(lab, [a, b]);
      await sleep(ctx.quick ? 1000 : 3000);
      await sample('idle, 1 peer', agents[0]!);
      // The other 49 join: the Service now lists all 51 pods; A admits each peer once it speaks.
      const more = await startAgents(lab, rest.slice(0, RESOURCE_PEERS - 1), args, lab.pods.slice(0, RESOURCE_PEERS + 1));
      agents.push(...more);
      const took = await waitFor(`${RESOURCE_PEERS} live peers on ${a.name}`, async () => (await floodPeers(a)).length >= RESOURCE_PEERS, 120_000, 500);
      ctx.progress(`resources: ${RESOURCE_PEERS} peers programmed on ${a.name} ${(took / 1000).toFixed(1)} s after their agents started`);
      await sleep(ctx.quick ? 1000 : 3000);
      await sample(`${RESOURCE_PEERS} live peers`, agents[0]!);
    } finally {
      await stopAgents(agents);
    }
    return {
      rows,
      notes: [
        `RSS = VmRSS, CPU = utime+stime over ${windowMs / 1000} s (% of one core), of the agent in pod ${a.name}; agent defaults (heartbeat 1 s)`,
        `"${RESOURCE_PEERS} live peers": 51 pods on 3 nodes, every one running an agent, so the measured agent exchanges STATE with all of them`,
      ],
    };
  });
}

