/**
 * "The app never starts before its multicast works", across nodes: `kmcast wait` returns only
 * once the pod is captured on its node AND the domain's other nodes are heard (or one peer expiry
 * passed). Lab: 3 nodes, one member pod each, every node listed (--peers), defaults for the
 * heartbeat (1 s) and --peer-expiry (5): the bounded wait is 5 s.
 * (a) cold start: node 1's agent first, nodes 2 and 3 a second later (a DaemonSet rollout): n1p1's
 *     wait returns only after both other nodes are heard, and the first datagrams its app sends
 *     right then (a group, link-local, broadcast) reach the members on both other nodes;
 * (b) a listed node that never comes up: node 1's agent restarts while node 3's is gone; the pod's
 *     wait says whom it waits for, returns after the bounded wait, says DEGRADED and why, and
 *     /status, /readyz, /metrics and doctor say so too.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { received, receivedAny, sendFromPod, startNodeReceiver } from '../../src/lab/node-apps.js';
import { agentsEvidence, KMCAST_MAIN, netnsFetch, runInNetns, spawnInNetns, startNodeAgent, waitFor, settle } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = 'kmcast-peers.default.svc.cluster.local';
const G = '239.1.1.1';
const LL = '224.0.0.251';
const BC = '255.255.255.255';
const PORT = 7630;
const BOUND_MS = 5 * 1000;

interface PodWait {
  readonly pod: LabPod;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; at: number }>;
  stderr(): string;
}

describe('node mode readiness across nodes: kmcast wait returns once the other nodes are heard', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let keyDir: string;
  let agentArgs: string[];
  const agents = new Map<number, NodeAgentHandle>();
  /** What the agents show, quoted when a wait times out. */
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const waits: PodWait[] = [];
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => lab.nodes.find((n) => n.index === i)!;

  before(async () => {
    if (skip) return;
    lab = await labUp({ id: testLabId('nr'), nodes: ['bridge', 'calico', 'bridge'], podsPerNode: 1, mtu: 1500, service: SERVICE }, { runner });
    await setServiceMembers(
      lab,
      lab.pods.map((p) => p.ip),
    );
    keyDir = mkdtempSync(join(tmpdir(), 'kmcast-node-key-'));
    writeFileSync(join(keyDir, 'key'), `hex:${randomBytes(32).toString('hex')}\n`);
    agentArgs = ['--service', `${SERVICE}=100`, '--key-file', join(keyDir, 'key'), '--resolve-interval', '1000'];
  });

  after(async () => {
    for (const w of waits) w.child.kill('SIGKILL');
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL').catch(() => undefined)));
    if (lab && !keepLab()) await labDown(runner, { id: lab.spec.id });
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  function startWait(p: LabPod): PodWait {
    const env = { PATH: process.env.PATH ?? '', KMCAST_NODE_IP: node(p.node).underlayIp, KMCAST_POD_IP: p.ip };
    const child = spawnInNetns(p.netns, [process.execPath, KMCAST_MAIN, 'wait', '--timeout', '60s', '--interval', '100ms'], { env });
    let err = '';
    child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout?.resume();
    const w: PodWait = { pod: p, child, exited: new Promise((r) => child.once('close', (code) => r({ code, at: Date.now() }))), stderr: () => err };
    waits.push(w);
    return w;
  }

  async function startAgent(i: number): Promise<number> {
    agents.set(i, await startNodeAgent(lab, node(i), agentArgs));
    return Date.now();
  }

  async function status(i: number): Promise<NodeStatus> {
    const r = await netnsFetch(node(i).netns, '/status', NODE_HTTP_PORT);
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as NodeStatus;
  }

  test('baseline: nothing crosses nodes without kmcast', async (t) => {
    if (!needRoot(t)) return;
    const rx = await startNodeReceiver(pod('n2p1').netns, { port: PORT, groups: [G, LL] });
    for (const dst of [G, LL, BC]) await sendFromPod(pod('n1p1').netns, dst, { port: PORT, count: 3, intervalMs: 5 });
    await settle(300);
    const rep = await rx.stop();
    for (const dst of [G, LL, BC]) assert.equal(receivedAny(rep, dst), 0, `${dst} crossed nodes without kmcast: the lab cheats`);
  });

  test('(a) cold start: the wait returns after the other nodes are heard; the first datagrams reach every node', async (t) => {
    if (!needRoot(t)) return;
    // The receivers (the apps of the other nodes' pods) joined before their agents start.
    const rx = await Promise.all(['n2p1', 'n3p1'].map((n) => startNodeReceiver(pod(n).netns, { port: PORT, groups: [G, LL] })));
    const w = startWait(pod('n1p1'));
    const t0 = await startAgent(1);
    await sleep(1000);
    const [t2, t3] = await Promise.all([startAgent(2), startAgent(3)]);
    const { code, at } = await w.exited;
    // The app starts now: one datagram of each kind, at once, nothing waited for.
    for (const dst of [G, LL, BC]) await sendFromPod(pod('n1p1').netns, dst, { port: PORT, count: 1, intervalMs: 0 });
    // Delivered or not, the datagrams are on their way: wait for them, then for a late duplicate.
    await Promise.all(rx.map((r) => r.waitTotal(3, 3000).catch(() => undefined)));
    await settle(300);
    const reps = await Promise.all(rx.map((r) => r.stop()));
    assert.equal(code, 0, w.stderr());
    t.diagnostic(`wait returned ${at - t0} ms after node 1's agent started, ${at - Math.max(t2, t3)} ms after nodes 2 and 3's`);
    assert.ok(at > Math.max(t2, t3), 'the wait returned only after the other node agents were up');
    for (const [i, rep] of reps.entries()) {
      for (const dst of [G, LL, BC]) assert.equal(received(rep, dst, pod('n1p1').ip), 1, `n${i + 2}p1 got the first ${dst} datagram: ${JSON.stringify(rep.counts)}`);
    }
    assert.match(w.stderr(), /waits to hear the domain's other nodes/, 'it said whom it waited for');
    assert.match(w.stderr(), /pod 10\.244\.1\.11 is programmed in domain kmcast-peers\.default\.svc\.cluster\.local \(host veth kmcv1\); all 2 other nodes heard; starting the app/);
    // The receivers left G meanwhile: /status may show node 1 programming that change first.
    await waitFor(
      'node 1 /status: both other nodes heard',
      async () => {
        const p = (await status(1)).domains[0]!.peerNodes;
        return p !== undefined && p.listed === 2 && p.heard === 2 && p.waitingFor.length === 0 && !p.degraded && p.boundMs === BOUND_MS;
      },
      10_000,
      { intervalMs: 100, explain: evidence },
    );
  });

  test('(b) a listed node that never comes up: the wait returns after the bounded wait and says DEGRADED', async (t) => {
    if (!needRoot(t) || agents.size !== 3) return;
    await agents.get(3)!.stop('SIGKILL');
    agents.delete(3);
    await agents.get(1)!.stop('SIGKILL');
    agents.delete(1);
    // The pod restarts with the agent (its init container runs again).
    const w = startWait(pod('n1p1'));
    const t0 = await startAgent(1);
    await waitFor(
      "n1p1's wait to name node 3 as missing",
      async () => {
        if (/waits to hear the domain's other nodes \([^)]*172\.31\.3\.2\)/.test(w.stderr())) return true;
        if (w.child.exitCode !== null) throw new Error(`it exited early: ${w.stderr()}`);
        return false;
      },
      20_000,
      { intervalMs: 50, explain: async () => `${w.stderr()}\n${await evidence()}` },
    );
    const ready0 = await netnsFetch(node(1).netns, '/readyz', NODE_HTTP_PORT);
    const { code, at } = await w.exited;
    assert.equal(code, 0, w.stderr());
    t.diagnostic(`degraded start ${at - t0} ms after node 1's agent started (bound ${BOUND_MS} ms); /readyz before: ${ready0.status}`);
    assert.ok(at - t0 >= BOUND_MS - 1000, `returned only after the bounded wait, took ${at - t0} ms`);
    assert.match(w.stderr(), /DEGRADED: peer nodes 172\.31\.3\.2 not heard within 5\.0 s, starting without them/);
    const st = await status(1);
    assert.equal(st.ready, true);
    assert.deepEqual({ ...st.domains[0]!.peerNodes!, leftMs: 0 }, { listed: 2, heard: 1, waitingFor: [node(3).underlayIp], degraded: true, boundMs: BOUND_MS, leftMs: 0 });
    assert.equal((await netnsFetch(node(1).netns, '/readyz', NODE_HTTP_PORT)).status, 200);
    const metrics = await netnsFetch(node(1).netns, '/metrics', NODE_HTTP_PORT);
    assert.match(metrics.body, /kmcast_node_peer_nodes_unheard\{domain="kmcast-peers\.default\.svc\.cluster\.local"\} 1/);
    const doc = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'doctor', '--node', '--json'], 20_000);
    const agentCheck = (JSON.parse(doc.stdout) as { checks: Array<{ id: string; status: string; detail: string }> }).checks.find((c) => c.id === 'node-agent');
    assert.equal(agentCheck?.status, 'WARN', JSON.stringify(agentCheck));
    assert.match(agentCheck!.detail, /peer nodes 172\.31\.3\.2 of kmcast-peers\.default\.svc\.cluster\.local not heard/);
    const text = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'status', '--node'], 20_000);
    assert.match(text.stdout, /peer nodes: 1 of 2 listed heard: DEGRADED, 172\.31\.3\.2 not heard within 5\.0 s/, text.stdout + text.stderr);
  });
});
