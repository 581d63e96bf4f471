/**
 * kmcast data plane, control plane and agent resources, in labs (simulated clusters).
 *
 * Selective vs flood: the same lab, the same trials and the same run, once with every agent
 * started `--replication selective` (per-group MDB entries: copies only to peers that joined) and
 * once with every agent restarted `--replication flood` (no MDB entries: every group goes to every
 * peer, as on iproute2 < 6.3). Each agent's /status is checked to report the mode asked for, and
 * before every trial the sender's vx0 is checked to hold the entries that mode implies.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { setServiceMembers } from '../../src/lab/lab.js';
import type { AgentHandle } from '../../src/lab/process.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import type { ProbeReport } from '../../src/probe/report.js';
import type { BenchContext } from '../lib/context.js';
import { BENCH_GROUP, BENCH_PORT, measureDataPlane } from '../lib/context.js';
import type { ReplicationMode } from '../lib/lab.js';
import {
  agentReplication,
  benchAgentArgs,
  buildLab,
  floodPeers,
  mdbDestinations,
  mdbEntries,
  removeLab,
  sampleResources,
  startAgentWithNode,
  startAgents,
  startAgentsInBatches,
  stopAgents,
  waitFor,
  waitReady,
} from '../lib/lab.js';
import { findMaxRate, NODE_OPTION_SETS, pct, resourceLabel } from '../lib/pure.js';
import type { ResultRow } from '../lib/pure.js';
import { iperfTrial, runner, spawnIn, stop } from '../lib/net.js';
import { IpClient } from '../../src/kernel/ip.js';
import { KMCAST_MAIN } from '../../src/lab/process.js';
import { SIZES } from './baseline.js';

export const labIds = (ctx: BenchContext): string[] => ['a', 'f', 'c', 'r'].map((s) => `${ctx.id}${s}`);

/** Builds a lab, runs `fn`, and removes the lab whatever happened. */
export async function withLab<T>(id: string, nodes: Lab['spec']['nodes'], podsPerNode: number, fn: (lab: Lab) => Promise<T>, opts: { ipv6?: boolean } = {}): Promise<T> {
  const lab = await buildLab(id, nodes, podsPerNode, opts);
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
    await waitFor(
      'MDB entries towards every receiver',
      async () => {
        const d = await mdbDestinations(sender, BENCH_GROUP);
        return receivers.every((r) => d.includes(r.ip));
      },
      10_000,
      20,
    );
  };
}

/**
 * Flood: the sender's vx0 holds no MDB entry at all, neither for the group nor the catch-all of
 * selective mode (a restarted agent keeps the entries it adopted for one peer expiry, and a
 * leftover catch-all would drop the unregistered group: 100% loss, not flooding).
 */
function floodReady(sender: LabPod): () => Promise<void> {
  return async () => {
    try {
      await waitFor('no MDB entry on the sender', async () => (await mdbEntries(sender)).length === 0, 15_000, 50);
    } catch {
      throw new Error(`flood mode: the sender still has MDB entries: ${(await mdbEntries(sender)).join('; ')}`);
    }
  };
}

/**
 * Starts agents in `pods` with `--replication mode`, waits until they are ready, the sender
 * floods to every other member and every agent reports that mode; runs `fn`; stops them (SIGTERM:
 * vx0 stays, its replication entries go, so the next mode starts from the same device).
 */
async function withAgents<T>(lab: Lab, pods: readonly LabPod[], mode: ReplicationMode, fn: () => Promise<T>): Promise<T> {
  const [sender] = pods;
  if (!sender) throw new Error('no member pods');
  const agents = await startAgents(lab, pods, benchAgentArgs(mode));
  try {
    await waitReady(lab, pods, 60_000);
    await converge(sender, pods.length - 1);
    for (const p of pods) {
      const got = await agentReplication(p);
      if (got !== mode) throw new Error(`agent in ${p.name} reports replication ${String(got)}, not ${mode} (iproute2 < 6.3 falls back to flood)`);
    }
    return await fn();
  } finally {
    await stopAgents(agents);
  }
}

export async function oneToThree(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const [id] = labIds(ctx);
  return await withLab(id!, ['calico', 'bridge', 'calico', 'bridge'], 1, async (lab) => {
    const [sender, ...receivers] = lab.pods;
    if (!sender) throw new Error('lab has no pods');
    const rows: ResultRow[] = [];
    const recvNs = receivers.map((r) => r.netns);
    for (const mode of ['selective', 'flood'] as const) {
      await withAgents(lab, lab.pods, mode, async () => {
        const beforeSend = mode === 'selective' ? selectiveReady(sender, receivers) : floodReady(sender);
        for (const size of SIZES) {
          rows.push(await measureDataPlane(ctx, `kmcast ${mode} ${size}B`, { sender: sender.netns, receivers: recvNs, size, beforeSend }));
        }
      });
    }
    return {
      rows,
      notes: [
        `lab: 4 nodes (calico, bridge, calico, bridge), 1 pod each; sender on node 1, receivers on nodes 2-4; agents ${benchAgentArgs('selective').join(' ')}, then all restarted with --replication flood`,
        'with 3 receivers among 4 members, flood and selective make the same 3 copies: the difference shows in the fan-out scenario',
        'relay mode: not implemented in kmcast yet, so not measured',
      ],
    };
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
      const measure = async (mode: ReplicationMode): Promise<number> =>
        await withAgents(lab, members, mode, async () => {
          const beforeSend = mode === 'selective' ? selectiveReady(sender, [receiver]) : floodReady(sender);
          const r = await findMaxRate(
            async (pps) => {
              const t = await iperfTrial({ sender: sender.netns, receivers: [receiver.netns], group: BENCH_GROUP, port: BENCH_PORT, pps, size: 64, seconds: ctx.trialS, beforeSend });
              ctx.progress(`fan-out ${n} ${mode}: offered ${pps || 'unlimited'} -> sent ${Math.round(t.sentPps)} pps, loss ${t.lossPercent.toFixed(3)}%`);
              return t;
            },
            { maxLossPercent: 0.1, steps: 4 },
          );
          return Math.round(r.maxPps);
        });
      const selective = await measure('selective');
      const flood = await measure('flood');
      rows.push({ label: `1 of ${n} members`, values: { 'selective max pps': selective, 'flood max pps': flood, 'copies flood': n - 1, 'selective / flood': flood > 0 ? selective / flood : null } });
    }
    return {
      rows,
      notes: [
        '64 B, 1 sender and 1 receiver (on another node) among N member pods; max pps under 0.1% loss (binary search)',
        'flood (all agents --replication flood): the sender copies every datagram to all N-1 peers; selective (--replication selective): one MDB copy to the receiver',
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
      await waitFor('the receiver probe to join', async () => (await new IpClient(runner, b.netns).maddrs('vx0')).includes(BENCH_GROUP), 10_000, 50);
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
      notes.push("start -> first delivery: t0 = spawn of the sender pod's agent (node startup included), end = first datagram at the receiver (same clock)");

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
      rows.push({
        label: `join latency (${joins} joins, 100 pps)`,
        values: { 'ms (p50)': pct(latencies, 50), 'p99 ms': pct(latencies, 99), 'max ms': latencies.length ? Math.max(...latencies) : null, samples: latencies.length },
      });
      notes.push('join latency = first datagram - join, measured by the receiving probe; includes up to 10 ms of sender spacing at 100 pps');

      // 3. Dead peer: SIGKILL B's agent; time until A's vx0 drops B's flood entry.
      await waitFor('A to list B as a flood peer', async () => (await floodPeers(a)).includes(b.ip), 20_000);
      if (agentB?.child.pid !== undefined) process.kill(agentB.child.pid, 'SIGKILL');
      const detect = await waitFor('A to purge dead peer B', async () => !(await floodPeers(a)).includes(b.ip), 30_000, 50).catch(() => null);
      rows.push({ label: 'dead peer purged (SIGKILL)', values: { 'ms (p50)': detect, samples: detect === null ? 0 : 1 } });
      notes.push(
        'dead peer: agent defaults (heartbeat 1 s, expiry 5 heartbeats, --listed-peer-expiry 3 x expiry); time from SIGKILL of the peer agent to its flood entry leaving vx0. The lab DNS still lists the dead pod, as Kubernetes does for a pod whose container crashed, so the peer is suspect first and purged at the listed expiry (~15 s): a live but CPU-starved peer keeps its entries that long. A pod DNS no longer lists goes after 5 heartbeats, a LEAVE at once',
      );
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
    const settleMs = ctx.quick ? 1000 : 2000;
    const rows: ResultRow[] = [];
    const args = ['--log-level', 'info'];
    const sample = async (state: string, set: (typeof NODE_OPTION_SETS)[number], agent: AgentHandle): Promise<void> => {
      const pid = agent.child.pid;
      if (pid === undefined) throw new Error('agent has no pid');
      const r = await sampleResources(pid, windowMs);
      const entries = (await floodPeers(a)).length;
      const mb = (v: number | null): number | null => (v === null ? null : v / 2 ** 20);
      rows.push({
        label: resourceLabel(state, set),
        values: { 'RSS MB': mb(r.rssBytes), 'RSS max MB': mb(r.rssMaxBytes), 'CPU %': r.cpuPercent, 'flood entries': entries },
      });
      ctx.progress(`resources: ${resourceLabel(state, set)}: RSS ${mb(r.rssBytes)?.toFixed(1)} MB (max ${mb(r.rssMaxBytes)?.toFixed(1)}), CPU ${r.cpuPercent?.toFixed(1)}%`);
    };
    // The measured agent in pod a, restarted once per option set; everything else stays up.
    const measure = async (state: string, peers: number): Promise<void> => {
      for (const set of NODE_OPTION_SETS) {
        const agent = await startAgentWithNode(lab, a, set.args, args, set.env);
        try {
          await waitReady(lab, [a], 60_000);
          await waitFor(`${peers} live peers on ${a.name}`, async () => (await floodPeers(a)).length >= peers, 60_000, 200);
          await sleep(settleMs);
          await sample(state, set, agent);
        } finally {
          await stopAgents([agent]);
        }
      }
    };
    await setServiceMembers(lab, [a.ip, b.ip]);
    const others = await startAgents(lab, [b], args, [a, b]);
    try {
      await measure('idle, 1 peer', 1);
      // The other 49 join: the Service now lists all 51 pods; each agent admits the others.
      const all = lab.pods.slice(0, RESOURCE_PEERS + 1);
      // In batches, each ready before the next: what is measured is the agent among 50 live peers.
      others.push(...(await startAgentsInBatches(lab, rest.slice(0, RESOURCE_PEERS - 1), args, all)));
      const took = await waitFor(`${RESOURCE_PEERS} live peers on ${b.name}`, async () => (await floodPeers(b)).length >= RESOURCE_PEERS - 1, 120_000, 500);
      ctx.progress(`resources: ${RESOURCE_PEERS - 1} peers programmed on ${b.name} ${(took / 1000).toFixed(1)} s after their agents started`);
      await measure(`${RESOURCE_PEERS} live peers`, RESOURCE_PEERS);
    } finally {
      await stopAgents(others);
    }
    return {
      rows,
      notes: [
        `the agent in pod ${a.name}, restarted once per Node.js option set ("[ENV] node OPTIONS main.js agent"), agent defaults (heartbeat 1 s); ${settleMs / 1000} s after it has all its peers: RSS = VmRSS at the end and highest of samples every 250 ms over ${windowMs / 1000} s, CPU = utime+stime over the same window (% of one core)`,
        `"${RESOURCE_PEERS} live peers": 51 pods on 3 nodes, every one running an agent, so the measured agent exchanges STATE with all of them`,
        '--jitless is measured to show its CPU cost; it is not a candidate for the daemon',
      ],
    };
  });
}
