/**
 * Node mode under starvation: the node agents follow the sidecar's peer-expiry rule
 * (membership/expiry.ts). Lab: 3 nodes, one member pod each, node agents with heartbeat 500 ms,
 * --peer-expiry 4 (2 s) and the default --listed-peer-expiry (12 heartbeats, 6 s); every node is
 * listed (--peers).
 * - node 3's agent gets no CPU at all (SIGSTOP: the scheduler's extreme) for 2.5 x the expiry,
 *   within the listed expiry: nodes 1 and 2 keep their entries towards node 3 throughout (they
 *   report it suspect, proof that the starvation bit), nobody logs an expiry, and node 3, running
 *   again, does not count its own stall as its peers' silence;
 * - a crashed (SIGKILL) node agent that is still listed is purged after the listed expiry, not
 *   before the plain expiry.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { received, sendFromPod, startNodeReceiver } from '../../src/lab/node-apps.js';
import { agentsEvidence, startNodeAgent, waitFor, settle } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = 'kmcast-peers.default.svc.cluster.local';
const DEV = 'kmcvx100';
const HEARTBEAT_MS = 500;
const EXPIRY_MS = 4 * HEARTBEAT_MS;
const LISTED_EXPIRY_MS = 12 * HEARTBEAT_MS;
const BC = '255.255.255.255';
const PORT = 7620;
const N = 10;

interface LogLine {
  msg: string;
  peers?: string[];
}

async function logLines(a: NodeAgentHandle): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for (const l of (await readFile(a.logFile, 'utf8').catch(() => '')).split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as LogLine);
    } catch {
      // a line cut by a kill
    }
  }
  return out;
}

describe('node mode: a starved node agent keeps its entries on the others while it is listed', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let keyDir: string;
  const agents = new Map<number, NodeAgentHandle>();
  /** What the agents show, quoted when a wait times out. */
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const node = (i: number): LabNode => lab.nodes.find((n) => n.index === i)!;
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;

  /** The node IPs node i floods to on the domain's device. */
  async function floodNodes(i: number): Promise<string[]> {
    const fdb = await new IpClient(runner, node(i).netns).bridge.fdb(DEV).catch(() => []);
    return fdb
      .filter((e) => e.mac === '00:00:00:00:00:00' && e.dst)
      .map((e) => e.dst!)
      .sort();
  }

  const others = (i: number): string =>
    [1, 2, 3]
      .filter((j) => j !== i)
      .map((j) => node(j).underlayIp)
      .sort()
      .join();

  async function expiries(): Promise<string[]> {
    const out: string[] = [];
    for (const [i, a] of agents) for (const l of await logLines(a)) if (l.msg.startsWith('peers expired')) out.push(`node ${i}: ${(l.peers ?? []).join(',')}`);
    return out;
  }

  before(async () => {
    if (skip) return;
    lab = await labUp({ id: testLabId('ns'), nodes: ['bridge', 'calico', 'bridge'], podsPerNode: 1, mtu: 1500, service: SERVICE }, { runner });
    await setServiceMembers(
      lab,
      lab.pods.map((p) => p.ip),
    );
    keyDir = mkdtempSync(join(tmpdir(), 'kmcast-node-key-'));
    writeFileSync(join(keyDir, 'key'), `hex:${randomBytes(32).toString('hex')}\n`);
  });

  after(async () => {
    for (const a of agents.values()) if (a.child.pid) process.kill(a.child.pid, 'SIGCONT');
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL').catch(() => undefined)));
    if (lab && !keepLab()) await labDown(runner, { id: lab.spec.id });
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  test('baseline, then three node agents converge and carry broadcast across nodes', async (t) => {
    if (!needRoot(t)) return;
    const rx0 = await startNodeReceiver(pod('n1p1').netns, { port: PORT, groups: [] });
    await sendFromPod(pod('n3p1').netns, BC, { port: PORT, count: N, intervalMs: 5 });
    await settle(300);
    assert.equal(received(await rx0.stop(), BC, pod('n3p1').ip), 0, 'broadcast crossed nodes without kmcast: the lab cheats');
    const args = ['--service', `${SERVICE}=100`, '--key-file', join(keyDir, 'key'), '--heartbeat-interval', String(HEARTBEAT_MS), '--peer-expiry', '4', '--resolve-interval', '1000'];
    for (const i of [1, 2, 3]) agents.set(i, await startNodeAgent(lab, node(i), args));
    await waitFor(
      'every node floods to the two others',
      async () => {
        for (const i of [1, 2, 3]) if ((await floodNodes(i)).join() !== others(i)) return false;
        return true;
      },
      30_000,
      { intervalMs: 200, explain: evidence },
    );
    const rx = await startNodeReceiver(pod('n1p1').netns, { port: PORT, groups: [] });
    await sendFromPod(pod('n3p1').netns, BC, { port: PORT, count: N, intervalMs: 5 });
    await rx.waitTotal(N, 5000).catch(() => undefined); // the assertion says what arrived
    await settle(300);
    assert.equal(received(await rx.stop(), BC, pod('n3p1').ip), N, 'broadcast from node 3 reaches node 1');
  });

  test('node 3 starved beyond the expiry: the others keep it (suspect), nobody expires anybody', async (t) => {
    if (!needRoot(t) || agents.size !== 3) return;
    const starved = agents.get(3)!;
    const pid = starved.child.pid!;
    process.kill(pid, 'SIGSTOP');
    const until = Date.now() + 2.5 * EXPIRY_MS;
    let min1 = Infinity;
    let min2 = Infinity;
    try {
      while (Date.now() < until) {
        const [f1, f2] = await Promise.all([floodNodes(1), floodNodes(2)]);
        min1 = Math.min(min1, f1.includes(node(3).underlayIp) ? 1 : 0);
        min2 = Math.min(min2, f2.includes(node(3).underlayIp) ? 1 : 0);
        await sleep(200);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    assert.equal(min1, 1, 'node 1 kept its entry towards the starved node 3 throughout');
    assert.equal(min2, 1, 'node 2 kept its entry towards the starved node 3 throughout');
    // Proof the starvation bit: without the listed expiry both would have removed node 3.
    for (const i of [1, 2]) {
      const suspect = (await logLines(agents.get(i)!)).filter((l) => l.msg.startsWith('peers suspect') && (l.peers ?? []).includes(node(3).underlayIp));
      assert.ok(suspect.length > 0, `node ${i} reported node 3 suspect while it was starved`);
    }
    // Node 3 runs again: it read the queued heartbeats before judging, so it expired nobody.
    await settle(2 * HEARTBEAT_MS); // an observation window: a wrong expiry would show now
    assert.deepEqual(await expiries(), [], 'no node agent expired a live peer');
    for (const i of [1, 2, 3]) assert.equal((await floodNodes(i)).join(), others(i), `node ${i} still floods to both others`);
    const rx = await startNodeReceiver(pod('n1p1').netns, { port: PORT, groups: [] });
    await sendFromPod(pod('n3p1').netns, BC, { port: PORT, count: N, intervalMs: 5 });
    await rx.waitTotal(N, 5000).catch(() => undefined); // the assertion says what arrived
    await settle(300);
    assert.equal(received(await rx.stop(), BC, pod('n3p1').ip), N, 'node 3 carries broadcast to node 1 again');
  });

  test('a crashed node agent that is still listed is purged after the listed expiry', async (t) => {
    if (!needRoot(t) || agents.size !== 3) return;
    await agents.get(3)!.stop('SIGKILL');
    agents.delete(3);
    const t0 = Date.now();
    await waitFor(
      'nodes 1 and 2 purge the crashed node 3',
      async () => {
        const [f1, f2] = await Promise.all([floodNodes(1), floodNodes(2)]);
        return !f1.includes(node(3).underlayIp) && !f2.includes(node(3).underlayIp);
      },
      LISTED_EXPIRY_MS + 8000,
      { intervalMs: 100, explain: evidence },
    );
    const purgedMs = Date.now() - t0;
    t.diagnostic(`crashed node 3 (still listed) purged ${purgedMs} ms after SIGKILL (expiry ${EXPIRY_MS} ms, listed expiry ${LISTED_EXPIRY_MS} ms)`);
    assert.ok(purgedMs >= LISTED_EXPIRY_MS - HEARTBEAT_MS, `a listed peer node is kept until the listed expiry (suspect first), purged after ${purgedMs} ms`);
  });
});
