/**
 * Node mode at the kubelet's default pod limit: node 1 runs 110 member pods, node 2 a few. For
 * node 1's agent as deployed (CAP_NET_BROADCAST: one `ip monitor maddress all-nsid` listener for
 * every pod) and for the same agent without that capability (one `ip monitor` per member pod,
 * what it did before), in the same lab and run:
 * - the memory of the agent and of every process it started (VmRSS summed over its tree);
 * - join latency: an unprivileged socket in a pod joins a new group on eth0 -> the MDB entry
 *   towards node 1 appears on node 2's VXLAN device (`bridge -t monitor mdb` in node 2);
 * - the processes the agent spawns and the CPU its tree uses over an idle window.
 * The members are one domain's; --node-domains spreads them over more (the node table's rules
 * hold one `dup to` per member of a domain, and the kernel caps a rule at 128 expressions).
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { addPod, setDnsRecord } from '../../src/lab/lab.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { cpuSeconds, findPython, netnsFetch, startNodeAgent } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import type { BenchContext } from '../lib/context.js';
import { runner, spawnIn, stop } from '../lib/net.js';
import type { Proc } from '../lib/net.js';
import { below, bursts, MdbMonitorParser, overlapsBurst, pct, promValue } from '../lib/pure.js';
import type { Burst, MdbEvent, ResultRow } from '../lib/pure.js';
import { treeMemory, treePrivate, watchSpawns } from '../lib/spawns.js';
import type { SpawnCount } from '../lib/spawns.js';
import { withLab } from './kmcast.js';
import { NODE_VNI } from './node.js';

/** The kubelet's default --max-pods. */
export const NODE_SCALE_PODS = 110;
/** Member pods on node 2. */
export const NODE_SCALE_REMOTE = 3;
export const NODE_SCALE_RSS_TARGET_MB = 100;
export const NODE_SCALE_P99_TARGET_MS = 50;
/** Runs the agent without CAP_NET_BROADCAST (setpriv execs it: the pid stays the agent's). */
export const WITHOUT_NET_BROADCAST: readonly string[] = ['setpriv', '--bounding-set=-net_broadcast', '--inh-caps=-net_broadcast', '--'];

/**
 * A pass of the agent shows as a burst of spawns: at least BURST_MIN processes with no gap over
 * BURST_GAP_MS (a join and its leave read one namespace each, about 100 ms apart).
 */
const BURST_GAP_MS = 50;
const BURST_MIN = 8;

/** The node-scale domains: the lab's Service (VNI 100), then kmcast-scale-<i> (VNI 100 i). */
export interface ScaleDomain {
  readonly service: string;
  readonly vni: number;
  readonly device: string;
}

export function scaleDomains(lab: Lab, count: number): ScaleDomain[] {
  return Array.from({ length: count }, (_, i) => {
    const vni = NODE_VNI * (i + 1);
    return { service: i === 0 ? lab.spec.service : `kmcast-scale-${i + 1}.default.svc.cluster.local`, vni, device: `kmcvx${vni}` };
  });
}

/** Both node agents' flags: every domain, production timers, info logs. */
const scaleArgs = (domains: readonly ScaleDomain[]): string[] => [...domains.flatMap((d) => ['--service', `${d.service}=${d.vni}`]), '--log-level', 'info'];

export const nodeScaleLabIds = (ctx: BenchContext): string[] => [`${ctx.id}ns`];

interface Mode {
  readonly column: string;
  readonly watch: 'all-nsid' | 'per-namespace';
  readonly wrap?: readonly string[];
  /** Third octet of this mode's groups: every join of the run is a new group. */
  readonly octet: number;
}

const MODES: readonly Mode[] = [
  { column: 'all-nsid (a)', watch: 'all-nsid', octet: 110 },
  { column: 'per-namespace (b, today)', watch: 'per-namespace', wrap: WITHOUT_NET_BROADCAST, octet: 111 },
];

interface ModeResult {
  readonly startS: number;
  readonly watchProcesses: number;
  readonly rssBytes: number;
  readonly rssMaxBytes: number;
  readonly rootRssBytes: number;
  readonly processes: number;
  readonly privateBytes: number | null;
  readonly idleS: number;
  readonly cpuPercent: number;
  readonly spawns: SpawnCount;
  readonly syncs: number | null;
  readonly joinReads: number | null;
  readonly join: readonly number[];
  /** Joins seen: t0 (setsockopt returned) and latency, ms. */
  readonly joinSamples: readonly { readonly t0: number; readonly ms: number }[];
  /** Bursts of the agent's spawns while the joins ran (its passes). */
  readonly joinPhaseBursts: readonly Burst[];
  readonly leave: readonly number[];
  readonly joinsMade: number;
  /** bench read time - bridge's own timestamp of the same line, ms. */
  readonly lag: readonly number[];
}

// argv: group. Joins it on eth0 by index (ip_mreqn), prints "J <CLOCK_REALTIME ms>" the moment
// setsockopt returned; when stdin closes, leaves and prints "L <ms>".
const JOIN_PY = `
import socket, struct, sys, time
g = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m = struct.pack('4s4si', socket.inet_aton(g), socket.inet_aton('0.0.0.0'), socket.if_nametoindex('eth0'))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, m)
print('J %.3f' % (time.clock_gettime(time.CLOCK_REALTIME) * 1000), flush=True)
sys.stdin.read()
s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, m)
print('L %.3f' % (time.clock_gettime(time.CLOCK_REALTIME) * 1000), flush=True)
`;

/** `bridge -t monitor mdb` in a node: every entry added or deleted on `devices` towards `dst`, by group. */
class MdbWatch {
  private readonly parser = new MdbMonitorParser();
  private readonly events = new Map<string, MdbEvent>();
  private readonly waiters = new Map<string, (e: MdbEvent) => void>();
  private rest = '';
  private readonly proc: Proc;

  constructor(
    node: LabNode,
    private readonly devices: ReadonlySet<string>,
    private readonly dst: string,
  ) {
    // bridge block-buffers stdout into a pipe: stdbuf -oL gives each event as it happens.
    this.proc = spawnIn(node.netns, ['stdbuf', '-oL', 'bridge', '-t', 'monitor', 'mdb'], { ...process.env, TZ: 'UTC' });
    this.proc.child.stdout?.on('data', (b: Buffer) => {
      // Sub-millisecond wall clock (Date.now() truncates), to compare with bridge's microseconds.
      const now = performance.timeOrigin + performance.now();
      const lines = (this.rest + b.toString()).split('\n');
      this.rest = lines.pop() ?? '';
      for (const l of lines) {
        const e = this.parser.push(l, now);
        if (!e || !this.devices.has(e.dev) || e.dst !== this.dst) continue;
        const key = `${e.deleted ? 'del' : 'add'} ${e.group}`;
        if (this.events.has(key)) continue;
        this.events.set(key, e);
        this.waiters.get(key)?.(e);
      }
    });
  }

  /** The first add (or delete) of `group`, already seen or within `timeoutMs`. */
  async wait(group: string, deleted: boolean, timeoutMs: number): Promise<MdbEvent | undefined> {
    const key = `${deleted ? 'del' : 'add'} ${group}`;
    const seen = this.events.get(key);
    if (seen) return seen;
    return await new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(key);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.set(key, (e) => {
        clearTimeout(t);
        this.waiters.delete(key);
        resolve(e);
      });
    });
  }

  get running(): boolean {
    return this.proc.child.exitCode === null && this.proc.child.signalCode === null;
  }

  async stop(): Promise<void> {
    await stop(this.proc, 'SIGTERM', 1000);
  }
}

async function nodeStatus(node: LabNode): Promise<NodeStatus> {
  const r = await netnsFetch(node.netns, '/status', NODE_HTTP_PORT);
  if (r.status !== 200) throw new Error(`/status of ${node.netns}: HTTP ${r.status}`);
  return JSON.parse(r.body) as NodeStatus;
}

async function nodeMetrics(node: LabNode): Promise<string> {
  const r = await netnsFetch(node.netns, '/metrics', NODE_HTTP_PORT);
  return r.status === 200 ? r.body : '';
}

async function waitLine(p: Proc, re: RegExp, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(p.out);
    if (m?.[1]) return Number(m[1]);
    if (p.child.exitCode !== null || Date.now() > deadline) return undefined;
    await sleep(2);
  }
}

/** The CLI's last words when the agent could not start (`kmcast: <message>`), from its log. */
function fatalLine(logFile: string): string | undefined {
  let log = '';
  try {
    log = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  const i = log.search(/^kmcast: /m);
  return i < 0 ? undefined : log.slice(i, i + 400).replace(/\s+/g, ' ');
}

/** What an nft "Invalid argument" on a long rule means here. */
const RULE_LIMIT_HINT =
  "the node table gives each local member one `dup to` in the delivery rule and in every other member's capture rule, and the kernel takes at most 128 expressions per rule (NFT_RULE_MAXEXPRS): about 60 members of a domain per node; --node-domains spreads them over more domains";

/**
 * Every member pod of `node` programmed and the join watch in the expected mode with its helper
 * processes running (1, or one per member); returns the status then. Fails at once when the
 * agent could not start, and after 30 s when its ruleset cannot be installed.
 */
async function waitScaleReady(agent: NodeAgentHandle, members: number, mode: Mode, timeoutMs: number): Promise<NodeStatus> {
  const node = agent.node;
  let last: NodeStatus | undefined;
  const want = mode.watch === 'all-nsid' ? 1 : members;
  const t0 = Date.now();
  const hint = (msg: string): string => (/Could not process rule: Invalid argument/.test(msg) ? `${msg} ... (${RULE_LIMIT_HINT})` : msg);
  const what = `${members} members programmed on ${node.netns}, join watch ${mode.watch} with ${want} helper(s)`;
  for (;;) {
    const fatal = fatalLine(agent.logFile);
    if (fatal !== undefined) throw new Error(`node 1's agent (${mode.column}) did not start: ${hint(fatal)}`);
    last = await nodeStatus(node).catch(() => last); // not listening yet
    const local = last?.domains.flatMap((d) => d.localMembers) ?? [];
    const err = last?.ruleset.lastError;
    if (last && err && !local.some((m) => m.programmed) && Date.now() - t0 > 30_000) {
      throw new Error(`node 1's agent (${mode.column}) cannot install its ruleset for ${local.length} members: ${hint(err.slice(0, 300).replace(/\s+/g, ' '))}`);
    }
    if (last?.joinWatch && last.joinWatch.mode !== mode.watch) break; // reported below
    if (local.length === members && local.every((m) => m.programmed) && last?.joinWatch?.processes === want) break;
    if (Date.now() - t0 > timeoutMs) {
      const state = last ? `${local.filter((m) => m.programmed).length}/${local.length} programmed, joinWatch ${JSON.stringify(last.joinWatch)}` : 'no /status answer';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${state}${err ? `, ruleset error ${hint(err.slice(0, 300))}` : ''}`);
    }
    await sleep(500);
  }
  if (last?.joinWatch?.mode !== mode.watch) {
    throw new Error(`node 1's agent (${mode.column}) watches joins in mode ${String(last?.joinWatch?.mode)}, not ${mode.watch}: the capability setup did not take`);
  }
  return last;
}

/**
 * The delivery hop's bridge port turns forwarding one forward delay (15 s) after the first agent
 * created it: a link event, so that agent runs one more full pass then. No idle window starts
 * before this long after node 1's devices were created.
 */
const DEVICES_SETTLE_MS = 20_000;

async function measureMode(
  ctx: BenchContext,
  lab: Lab,
  mode: Mode,
  local: readonly LabPod[],
  domains: readonly ScaleDomain[],
  mdb: MdbWatch,
  /** When the first agent on node 1 started (it created the devices). */
  devices: { createdAt?: number },
): Promise<ModeResult> {
  const node = lab.nodes[0]!;
  const t0 = Date.now();
  const agent: NodeAgentHandle = await startNodeAgent(lab, node, scaleArgs(domains), mode.wrap ? { wrap: mode.wrap } : {});
  try {
    const pid = agent.child.pid;
    if (pid === undefined) throw new Error('node agent has no pid');
    const ready = await waitScaleReady(agent, local.length, mode, 180_000);
    const startS = (Date.now() - t0) / 1000;
    ctx.progress(`node-scale ${mode.column}: ${local.length} members programmed ${startS.toFixed(1)} s after start; joinWatch ${JSON.stringify(ready.joinWatch)}`);
    devices.createdAt ??= t0;
    await sleep(Math.max(ctx.quick ? 2000 : 5000, devices.createdAt + DEVICES_SETTLE_MS - Date.now()));

    // Idle: no join changes. /metrics and /status make the agent spawn (nft reads), so they are
    // read outside the window.
    const idleMs = ctx.quick ? 10_000 : 30_000;
    const m0 = await nodeMetrics(node);
    const watch = await watchSpawns(pid);
    const c0 = cpuSeconds(pid, { tree: true });
    const w0 = Date.now();
    const samples: number[] = [];
    let mem = await treeMemory(pid);
    while (Date.now() - w0 < idleMs) {
      await sleep(Math.min(1000, Math.max(1, idleMs - (Date.now() - w0))));
      mem = await treeMemory(pid);
      samples.push(mem.rssBytes);
    }
    const c1 = cpuSeconds(pid, { tree: true });
    const idleS = (Date.now() - w0) / 1000;
    const spawns = await watch.stop();
    const priv = await treePrivate(pid);
    const m1 = await nodeMetrics(node);
    const delta = (name: string, labels: Record<string, string> = {}): number | null => {
      const a = promValue(m0, name, labels);
      const b = promValue(m1, name, labels);
      return a === undefined || b === undefined ? null : b - a;
    };
    const cpuPercent = ((c1 - c0) / idleS) * 100;
    ctx.progress(
      `node-scale ${mode.column}: tree RSS ${(mem.rssBytes / 2 ** 20).toFixed(1)} MB in ${mem.processes} processes (agent ${(mem.rootRssBytes / 2 ** 20).toFixed(1)} MB); idle ${idleS.toFixed(0)} s: ${spawns.forks} spawns (${spawns.method}), CPU ${cpuPercent.toFixed(1)}%`,
    );

    // Joins: one new group each, spread over the member pods, started on a schedule of their own
    // (every 150-350 ms, at random) whatever the agent is doing: a join that waited for the one
    // before it to be seen and left would start after any pass that delayed that leave, and so
    // never meet a pass itself.
    const n = ctx.quick ? 20 : Math.max(local.length, 100);
    const joinSamples: { t0: number; ms: number }[] = [];
    const leave: number[] = [];
    const lag: number[] = [];
    const joinWatch = await watchSpawns(pid);
    const one = async (i: number): Promise<void> => {
      const pod = local[i % local.length]!;
      const group = `239.255.${mode.octet}.${1 + (i % 250)}`;
      const p = spawnIn(pod.netns, [...UNPRIVILEGED, findPython(), '-c', JOIN_PY, group], undefined, { stdin: 'pipe' });
      try {
        const joined = await waitLine(p, /^J ([\d.]+)$/m, 10_000);
        if (joined === undefined) throw new Error(`joiner in ${pod.name} did not join ${group}: ${p.err.trim() || p.out.trim()}`);
        const added = await mdb.wait(group, false, 5000);
        if (added) {
          joinSamples.push({ t0: joined, ms: added.atMs - joined });
          lag.push(added.arrivalMs - added.atMs);
        }
        p.child.stdin?.end();
        const left = await waitLine(p, /^L ([\d.]+)$/m, 5000);
        const removed = added ? await mdb.wait(group, true, 5000) : undefined;
        if (removed && left !== undefined) leave.push(removed.atMs - left);
      } finally {
        await stop(p, 'SIGKILL', 2000);
      }
    };
    const running: Promise<void>[] = [];
    const failed: unknown[] = [];
    for (let i = 0; i < n; i++) {
      running.push(one(i).catch((err: unknown) => void failed.push(err)));
      if (!mdb.running) throw new Error('bridge monitor mdb in node 2 exited');
      await sleep(150 + Math.random() * 200);
    }
    await Promise.all(running);
    if (failed.length) throw failed[0] instanceof Error ? failed[0] : new Error(String(failed[0]));
    const join = joinSamples.map((j) => j.ms);
    const joinPhaseBursts = bursts((await joinWatch.stop()).times, BURST_GAP_MS, BURST_MIN);
    ctx.progress(`node-scale ${mode.column}: ${join.length}/${n} joins seen on node 2, p50 ${pct(join, 50)?.toFixed(1)} ms, p99 ${pct(join, 99)?.toFixed(1)} ms`);
    return {
      startS,
      watchProcesses: ready.joinWatch?.processes ?? 0,
      rssBytes: mem.rssBytes,
      rssMaxBytes: Math.max(mem.rssBytes, ...samples),
      rootRssBytes: mem.rootRssBytes,
      processes: mem.processes,
      privateBytes: priv,
      idleS,
      cpuPercent,
      spawns,
      syncs: delta('kmcast_node_syncs_total'),
      joinReads: delta('kmcast_node_join_reads_total'),
      join,
      leave,
      joinsMade: n,
      joinSamples,
      joinPhaseBursts,
      lag,
    };
  } finally {
    await agent.stop();
  }
}

const MB = (v: number | null): number | null => (v === null ? null : v / 2 ** 20);
const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** The table: one row per metric, a column per mode, b / a, and the target (for a) with its verdict. */
export function nodeScaleRows(a: ModeResult, b: ModeResult, pods: number): ResultRow[] {
  const row = (label: string, f: (r: ModeResult) => number | string | null, target?: { text: string; limit: number }): ResultRow => {
    const va = f(a);
    const vb = f(b);
    const values: Record<string, number | string | null> = {
      [MODES[0]!.column]: va,
      [MODES[1]!.column]: vb,
      'b / a': typeof va === 'number' && typeof vb === 'number' && va !== 0 ? vb / va : null,
    };
    if (target) {
      values['target (a)'] = target.text;
      values['verdict (a)'] = below(typeof va === 'number' ? va : null, target.limit);
    }
    return { label, values };
  };
  const helpersMb = (r: ModeResult): number | null => MB(r.rssBytes - r.rootRssBytes);
  const idleBursts = (r: ModeResult): Burst[] => bursts(r.spawns.times, BURST_GAP_MS, BURST_MIN);
  const span = (x: Burst): number => x.end - x.start;
  const duringBurst = (r: ModeResult, j: { t0: number; ms: number }): boolean => overlapsBurst(r.joinPhaseBursts, j.t0, j.t0 + j.ms);
  // A join never seen within 5 s counts as that long in the percentiles.
  const withMissed = (r: ModeResult): number[] => [...r.join, ...Array<number>(r.joinsMade - r.join.length).fill(5000)];
  return [
    row('agent tree RSS MB (agent + every helper)', (r) => MB(r.rssBytes), { text: `< ${NODE_SCALE_RSS_TARGET_MB} MB`, limit: NODE_SCALE_RSS_TARGET_MB }),
    row('agent tree RSS max MB (1 s samples, idle)', (r) => MB(r.rssMaxBytes)),
    row('agent process RSS MB', (r) => MB(r.rootRssBytes)),
    row('helper processes (live)', (r) => r.processes - 1),
    row('helpers RSS MB', helpersMb),
    row('agent tree private MB (USS: pages only it maps)', (r) => MB(r.privateBytes)),
    row('join -> MDB on node 2, p50 ms', (r) => pct(withMissed(r), 50)),
    row('join -> MDB on node 2, p99 ms', (r) => pct(withMissed(r), 99), { text: `< ${NODE_SCALE_P99_TARGET_MS} ms`, limit: NODE_SCALE_P99_TARGET_MS }),
    row('join -> MDB on node 2, max ms', (r) => (r.join.length ? Math.max(...withMissed(r)) : null)),
    row('joins seen / made', (r) => `${r.join.length}/${r.joinsMade}`),
    row('leave -> MDB entry gone, p50 ms', (r) => pct(r.leave, 50)),
    row('leave -> MDB entry gone, p99 ms', (r) => pct(r.leave, 99)),
    row('idle window s', (r) => r.idleS),
    row('processes spawned, idle window', (r) => r.spawns.forks),
    row('spawns per s, idle', (r) => r.spawns.forks / r.idleS),
    row('full passes, idle window', (r) => r.syncs),
    row('join reads, idle window', (r) => r.joinReads),
    row('spawns per full pass (join reads apart)', (r) => (r.syncs ? (r.spawns.forks - (r.joinReads ?? 0)) / r.syncs : null)),
    row(`spawn bursts (>= ${BURST_MIN} in a row), idle window`, (r) => idleBursts(r).length),
    row('spawn burst duration p50 ms, idle', (r) => pct(idleBursts(r).map(span), 50)),
    row('spawn burst duration max ms, idle', (r) => (idleBursts(r).length ? Math.max(...idleBursts(r).map(span)) : null)),
    row('joins with a spawn burst in their window', (r) => r.joinSamples.filter((j) => duringBurst(r, j)).length),
    row('join -> MDB p99 ms, those without', (r) =>
      pct(
        r.joinSamples.filter((j) => !duringBurst(r, j)).map((j) => j.ms),
        99,
      ),
    ),
    row('join -> MDB p50 ms, those with', (r) =>
      pct(
        r.joinSamples.filter((j) => duringBurst(r, j)).map((j) => j.ms),
        50,
      ),
    ),
    row('CPU % of one core, idle (tree)', (r) => r.cpuPercent),
    row(`start -> ${pods} members programmed s`, (r) => r.startS),
  ];
}

function commands(s: SpawnCount): string {
  const top = Object.entries(s.commands).sort((x, y) => y[1] - x[1]);
  return top.map(([c, k]) => `${k} ${c}`).join(', ') || 'none';
}

export async function nodeScale(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const id = nodeScaleLabIds(ctx)[0]!;
  const loadStart = loadavg();
  const pods = ctx.nodePods ?? NODE_SCALE_PODS;
  const domainCount = ctx.nodeDomains ?? 1;
  return await withLab(id, ['calico', 'bridge'], NODE_SCALE_REMOTE, async (lab) => {
    const local = lab.pods.filter((p) => p.node === 1);
    while (local.length < pods) local.push(await addPod(lab, 1, runner));
    const remote = lab.pods.filter((p) => p.node === 2);
    // Pods take the domains in turn, on each node (every domain has members on both nodes).
    const domains = scaleDomains(lab, domainCount);
    for (const [i, d] of domains.entries()) {
      const of = (list: readonly LabPod[]): string[] => list.filter((_, k) => k % domains.length === i).map((p) => p.ip);
      await setDnsRecord(lab, d.service, [...of(local), ...of(remote)]);
    }
    ctx.progress(`node-scale: lab ${id} with ${local.length} member pods on node 1, ${remote.length} on node 2, ${domains.length} domain(s)`);
    const [n1, n2] = lab.nodes;
    if (!n1 || !n2) throw new Error('lab has no 2 nodes');
    const mdb = new MdbWatch(n2, new Set(domains.map((d) => d.device)), n1.underlayIp);
    const peer = await startNodeAgent(lab, n2, scaleArgs(domains));
    const results: ModeResult[] = [];
    const devices: { createdAt?: number } = {};
    try {
      for (const mode of MODES) results.push(await measureMode(ctx, lab, mode, local, domains, mdb, devices));
    } finally {
      await peer.stop();
      await mdb.stop();
    }
    const [a, b] = results as [ModeResult, ModeResult];
    const median = (v: readonly number[]): string => (pct(v, 50) ?? 0).toFixed(2);
    return {
      rows: nodeScaleRows(a, b, pods),
      notes: [
        `lab: 2 nodes (calico, bridge); node 1 holds ${pods} member pods${pods === NODE_SCALE_PODS ? " (the kubelet's default max pods)" : ` (--node-pods; the kubelet's default max pods is ${NODE_SCALE_PODS})`}, node 2 ${NODE_SCALE_REMOTE}; ${domains.length === 1 ? 'one domain' : `${domains.length} domains (--node-domains; the pods of each node take them in turn: ${domains.map((d) => `${d.service.split('.')[0]!} ${d.device}`).join(', ')})`}; both node agents with production timers (heartbeat 1 s, resolve 2 s, full pass every 10 s, every member's joins re-read every 30 s), info logs; node 2's agent runs as deployed throughout`,
        `(a): node 1's agent as deployed (root, CAP_NET_BROADCAST held: one \`ip monitor maddress all-nsid\`); (b): the same agent started under \`${WITHOUT_NET_BROADCAST.join(' ')}\`; each verified on /status (joinWatch ${a.watchProcesses} and ${b.watchProcesses} helper(s), modes all-nsid and per-namespace); same lab, same run, (a) then (b)`,
        `memory: VmRSS of the agent and every live descendant (/proc/PID/task/*/children), at the end of the idle window and the highest of 1 s samples in it; private = Private_* of /proc/PID/smaps_rollup summed (RSS counts the pages of the ip binary and libc once per helper, and the node binary's pages other Node.js processes on the machine share)`,
        `join latency: a python3 socket in a member pod (uid 65534, no capability) joins a new group on eth0 by index and prints CLOCK_REALTIME as setsockopt returns; the end is node 2's \`bridge -t monitor mdb\` timestamp of the entry towards node 1 on ${domains.map((d) => d.device).join(' or ')} (event-driven, TZ=UTC, microseconds; the bench read those lines a median ${median(a.lag)} / ${median(b.lag)} ms later); ${a.joinsMade} joins per mode over the ${pods} pods, started every 150-350 ms at random whatever the agent is doing (a few in flight at once); each socket leaves once its entry is seen, and the entry's deletion is timed the same way (a leave read within 100 ms of the namespace's last read waits for the end of those 100 ms: JOIN_READ_MIN_INTERVAL_MS); a join not seen within 5 s counts as 5000 ms`,
        `spawns: every fork by the agent or a descendant during the idle window, from the kernel's process events (${a.spawns.method}${a.spawns.lost || b.spawns.lost ? `, events lost: ${a.spawns.lost} / ${b.spawns.lost}: a lower bound` : ''}); full passes and join reads are the deltas of kmcast_node_syncs_total and kmcast_node_join_reads_total over the window (read just outside it: /metrics itself spawns nft)`,
        `spawned in (a): ${commands(a.spawns)}`,
        `spawned in (b): ${commands(b.spawns)}`,
        `passes: a pass of the agent shows as a burst of its spawns (at least ${BURST_MIN} with no gap over ${BURST_GAP_MS} ms, from the same process events, also recorded while the joins ran); a join "with a spawn burst in its window" met one (a full pass, or the periodic re-read of every member) between setsockopt and its MDB entry on node 2: the joins pass runs beside them, so what it can wait for is the CPU they take`,
        `the idle window starts ${DEVICES_SETTLE_MS / 1000} s or more after node 1's devices were created: the delivery hop's bridge port turns forwarding after the bridge's forward delay (15 s), a link event the first agent answers with one more full pass`,
        `CPU: utime+stime of the agent, its reaped children and its live descendants over the idle window (% of one core)`,
        `load average at the start / end of the scenario: ${loadStart} / ${loadavg()} (the machine must be otherwise idle for final figures)`,
      ],
    };
  });
}
