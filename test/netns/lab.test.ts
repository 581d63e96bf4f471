/**
 * The lab itself, as root: a 3-node mixed lab (calico, bridge, calico; 2 pods each) must route
 * unicast between all pods, answer the Service name from the lab DNS, keep multicast and broadcast
 * on the sender's node (the baseline every overlay test relies on), and leave nothing behind.
 */
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { ExecRunner } from '../../src/kernel/runner.js';
import { addPod, cutNode, findPod, healNode, labDown, labHealth, labUp, loadLab, removePod, setServiceMembers, startDns, stopDns } from '../../src/lab/lab.js';
import { buildSpec, labNetnsPrefix } from '../../src/lab/plan.js';
import { findPython, isAlive, pingFrom, podFetch, runInNetns, spawnInNetns, waitFor } from '../../src/lab/process.js';
import { TRAFFIC_KINDS, trafficMatrix } from '../../src/lab/traffic.js';
import type { Matrix } from '../../src/lab/traffic.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const id = testLabId('l');
const MTU = 1400;
let lab: Lab | undefined;

function theLab(t: TestContext): Lab | undefined {
  if (!needRoot(t)) return undefined;
  assert.ok(lab, 'the lab was not built (see the before hook)');
  return lab;
}

async function labNamespaces(): Promise<string[]> {
  const out = (await runner.run(['ip', 'netns', 'list'])).stdout;
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(labNetnsPrefix(id)));
}

/** A/NXDOMAIN lookup from inside a pod through its /etc/resolv.conf (Node's c-ares resolver). */
async function resolveIn(pod: LabPod, name: string): Promise<string[] | string> {
  const js =
    "const {Resolver}=require('node:dns').promises;new Resolver({timeout:700,tries:1}).resolve4(process.argv[1])" +
    '.then(a=>console.log(JSON.stringify(a.sort()))).catch(e=>console.log(JSON.stringify(e.code)))';
  const r = await runInNetns(pod.netns, [process.execPath, '-e', js, name]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as string[] | string;
}

describe('lab (netns)', () => {
  before(async () => {
    if (privilegedReason()) return;
    lab = await labUp(buildSpec({ id, nodes: ['calico', 'bridge', 'calico'], podsPerNode: 2, mtu: MTU }), { runner });
  });

  after(async () => {
    if (privilegedReason()) return;
    await labDown(runner, { id });
  });

  test('builds every namespace with the planned addresses and MTU, and reports itself whole', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const expected = [l.router, ...l.nodes.map((n) => n.netns), ...l.pods.map((p) => p.netns)].sort();
    assert.deepEqual((await labNamespaces()).sort(), expected);
    const pod = findPod(l, 'n1p2');
    const link = JSON.parse((await runner.run(['ip', '-j', 'addr', 'show', 'dev', 'eth0'], { netns: pod.netns })).stdout) as {
      mtu: number;
      addr_info: { family: string; local: string; prefixlen: number }[];
    }[];
    assert.equal(link[0]?.mtu, MTU);
    assert.deepEqual(
      link[0]?.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
      ['10.244.1.12/32'],
    );
    const health = await labHealth(l, runner);
    assert.deepEqual(health.missingNamespaces, []);
    assert.equal(health.dns.running, true);
    assert.deepEqual(
      (await loadLab(id))?.pods.map((p) => p.name),
      l.pods.map((p) => p.name),
    );
  });

  test('unicast: every pod pings a pod on every node, calico and bridge alike', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const pairs: [LabPod, LabPod][] = [];
    for (const from of l.pods) for (const to of l.pods) if (from !== to && (to.node !== from.node || to.name.endsWith('p2'))) pairs.push([from, to]);
    const results = await Promise.all(pairs.map(async ([from, to]) => ({ pair: `${from.name}->${to.name}`, ...(await pingFrom(from, to.ip, { count: 2 })) })));
    assert.deepEqual(
      results.filter((r) => r.received !== r.sent).map((r) => r.pair),
      [],
    );
  });

  test('DNS: the Service name answers the members, changes at once, NXDOMAIN otherwise, stops and starts', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const pod = findPod(l, 'n2p1');
    assert.deepEqual(await resolveIn(pod, l.spec.service), l.pods.map((p) => p.ip).sort());
    const two = [findPod(l, 'n3p2').ip, findPod(l, 'n1p1').ip];
    await setServiceMembers(l, two);
    assert.deepEqual(await resolveIn(pod, l.spec.service), [...two].sort());
    assert.equal(await resolveIn(pod, `nothing.${l.spec.service}`), 'ENOTFOUND');
    await stopDns(l);
    assert.equal((await labHealth(l, runner)).dns.running, false);
    assert.notDeepEqual(await resolveIn(pod, l.spec.service), [...two].sort());
    await startDns(l);
    assert.deepEqual(await resolveIn(pod, l.spec.service), [...two].sort());
    await setServiceMembers(
      l,
      l.pods.map((p) => p.ip),
    );
  });

  test('baseline: multicast, link-local multicast and broadcast never reach a pod on another node', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const m: Matrix = await trafficMatrix(l, { count: 3 });
    const pods: readonly LabPod[] = l.pods;
    assert.deepEqual(m.kinds, TRAFFIC_KINDS);
    for (const kind of m.kinds) {
      for (const from of pods) {
        for (const to of pods) {
          if (from === to) continue;
          const got = m.counts[kind][from.name]?.[to.name];
          // The positive control: on a bridge node the same-node pod hears everything, which proves
          // the receivers work and the zeros elsewhere are real. Calico pods are routed /32s: nothing.
          const want = from.node === to.node && from.style === 'bridge' ? m.sent : 0;
          assert.equal(got, want, `${kind} ${from.name} -> ${to.name}`);
        }
      }
    }
  });

  test('addPod joins the network and the DNS answer; removePod takes both away', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const pod = await addPod(l, 2, runner);
    assert.equal(pod.name, 'n2p3');
    assert.equal(pod.ip, '10.244.2.13');
    assert.deepEqual(await pingFrom(findPod(l, 'n1p1'), pod.ip), { sent: 1, received: 1 });
    assert.ok(((await resolveIn(pod, l.spec.service)) as string[]).includes(pod.ip));
    await removePod(l, pod, runner);
    assert.equal((await labNamespaces()).includes(pod.netns), false);
    assert.equal(existsSync(`/etc/netns/${pod.netns}`), false);
    assert.equal(((await resolveIn(findPod(l, 'n1p1'), l.spec.service)) as string[]).includes(pod.ip), false);
    assert.throws(() => findPod(l, 'n2p3'));
  });

  test('cutNode partitions a node; healNode restores it', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const from = findPod(l, 'n1p1');
    const to = findPod(l, 'n3p1');
    await cutNode(l, 3, runner);
    assert.deepEqual(await pingFrom(from, to.ip, { timeoutMs: 500 }), { sent: 1, received: 0 });
    await healNode(l, 3, runner);
    assert.deepEqual(await pingFrom(from, to.ip), { sent: 1, received: 1 });
  });

  test('podFetch reaches an HTTP server on the pod loopback', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const pod = findPod(l, 'n3p2');
    const dir = mkdtempSync(join(tmpdir(), 'kmclab-'));
    const token = randomBytes(8).toString('hex');
    writeFileSync(join(dir, 'token.txt'), token);
    const server = spawnInNetns(pod.netns, [findPython(), '-m', 'http.server', '9470', '--bind', '127.0.0.1', '--directory', dir]);
    try {
      const res = await waitFor('the test HTTP server', async () => await podFetch(pod, '/token.txt'), 10_000);
      assert.deepEqual(res, { status: 200, body: token });
      assert.equal((await podFetch(pod, '/missing')).status, 404);
      await assert.rejects(podFetch(pod, '/', 9471), /fetch http:\/\/127\.0\.0\.1:9471\/ in pod n3p2: ECONNREFUSED/);
    } finally {
      server.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('labDown removes namespaces, processes and /etc/netns entries even after the state was lost', async (t) => {
    const l = theLab(t);
    if (!l) return;
    // One process with a pid record, one without (only the namespace scan can find it).
    const recorded = spawnInNetns(findPod(l, 'n1p1').netns, ['sleep', '300'], { detached: true });
    const unrecorded = spawn('ip', ['netns', 'exec', findPod(l, 'n2p2').netns, 'sleep', '300'], { stdio: 'ignore', detached: true });
    unrecorded.unref();
    const pids = [recorded.pid, unrecorded.pid].filter((p): p is number => p !== undefined);
    assert.equal(pids.length, 2);
    await waitFor('both sleepers to run', async () => pids.every(isAlive), 5000);
    const dnsPid = (await labHealth(l, runner)).dns.pid;
    assert.ok(dnsPid !== undefined);
    const expected = (await labNamespaces()).sort();
    await rm(`${l.stateDir}/state.json`);
    await rm(`${l.stateDir}/pids`, { recursive: true, force: true });

    const r = await labDown(runner, { id });
    assert.deepEqual([...r.namespaces].sort(), expected);
    assert.ok(r.processes >= 3, `killed ${r.processes} processes`);
    await waitFor('the lab processes to die', async () => [...pids, dnsPid].every((p) => !isAlive(p)), 5000);
    assert.deepEqual(await labNamespaces(), []);
    assert.deepEqual(
      readdirSync('/etc/netns').filter((n) => n.startsWith(labNetnsPrefix(id))),
      [],
    );
    assert.equal(existsSync(l.stateDir), false);
    assert.equal(await loadLab(id), undefined);
    // A second run finds nothing left and fails on nothing.
    assert.deepEqual(await labDown(runner, { id }), { namespaces: [], processes: 0 });
    lab = undefined;
  });
});
