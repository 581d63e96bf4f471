/**
 * No deaf start, end to end: `kmcast wait` (the node-mode init container) runs INSIDE a pod's
 * namespace as uid 65532 with no capability, asking its node agent at the node's underlay IP and
 * port 9471 (what the injected init container gets from status.hostIP). Lab: node 1 calico,
 * node 2 bridge, 2 pods each. n1p2 is first left out of the domain's DNS answer.
 *
 * (a) started before any node agent runs, it keeps waiting and says the agent is unreachable;
 * (b) the agents start: it exits 0 once the pod is programmed, and right then a pod on the other
 *     node reaches it (broadcast and 224.0.0.251 at once, 239.x once the join is replicated);
 * (c) a pod in no domain is told not_member and never exits 0 until it is added to the DNS;
 * (d) its node agent is stopped with SIGTERM and with SIGKILL meanwhile: the wait survives both
 *     and completes once the pod is a member, and the pod then really receives;
 * (e) a member pod receiving traffic is deleted and re-created with the same IP (new namespace,
 *     new host veth, new ifindex) while the agents run: its wait exits 0 within seconds, it then
 *     receives (and sends) every kind exactly once, the old veth's chain is gone, and the other
 *     members lost and doubled nothing meanwhile.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { addPod, labDown, labUp, removePod, setServiceMembers } from '../../src/lab/lab.js';
import { received, receivedAny, sendFromPod, startNodeReceiver } from '../../src/lab/node-apps.js';
import { agentsEvidence, KMCAST_MAIN, netnsFetch, runInNetns, spawnInNetns, startNodeAgent, waitFor, settle } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import { NODE_TABLE, captureChainName, deliveryChainName, parseRuleset } from '../../src/node/nft.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = 'kmcast-peers.default.svc.cluster.local';
const DEV = 'kmcvx100';
const G = '239.1.1.1';
const LL = '224.0.0.251';
const BC = '255.255.255.255';
const PORT = 7610;
const N = 10;
/** What the injected init container's securityContext gives `kmcast wait`. */
const SANDBOX = ['setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'];

interface PodWait {
  readonly pod: LabPod;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

describe('kmcast wait in an unprivileged pod against the real node agent', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let keyDir: string;
  let agentArgs: string[];
  const agents = new Map<number, NodeAgentHandle>();
  /** What the agents show, quoted when a wait times out. */
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const waits: PodWait[] = [];
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => lab.nodes.find((n) => n.index === i)!;
  let w11: PodWait;
  let w21: PodWait;
  let w12: PodWait;

  before(async () => {
    lab = await labUp({ id: testLabId('nw'), nodes: ['calico', 'bridge'], podsPerNode: 2, mtu: 1500, service: SERVICE }, { runner });
    await setServiceMembers(
      lab,
      ['n1p1', 'n2p1', 'n2p2'].map((n) => pod(n).ip),
    );
    keyDir = mkdtempSync(join(tmpdir(), 'kmcast-node-key-'));
    writeFileSync(join(keyDir, 'key'), `hex:${randomBytes(32).toString('hex')}\n`);
    agentArgs = ['--service', `${SERVICE}=100`, '--key-file', join(keyDir, 'key'), '--heartbeat-interval', '1000', '--resolve-interval', '1000'];
  });

  after(async () => {
    for (const w of waits) w.child.kill('SIGKILL');
    if (keepLab()) return;
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  function startWait(p: LabPod): PodWait {
    const env = { PATH: process.env.PATH ?? '', KMCAST_NODE_IP: node(p.node).underlayIp, KMCAST_PORT: String(NODE_HTTP_PORT), KMCAST_POD_IP: p.ip };
    const child = spawnInNetns(p.netns, [...SANDBOX, process.execPath, KMCAST_MAIN, 'wait', '--timeout', '120s', '--interval', '200ms'], { env });
    let err = '';
    child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout?.resume();
    const w: PodWait = { pod: p, child, exited: new Promise((r) => child.once('close', (code) => r(code))), stderr: () => err };
    waits.push(w);
    return w;
  }

  const running = (w: PodWait): boolean => w.child.exitCode === null && w.child.signalCode === null;

  async function seen(w: PodWait, re: RegExp, from = 0, ms = 20_000): Promise<void> {
    await waitFor(
      `${w.pod.name}'s wait to print ${re}`,
      async () => {
        if (re.test(w.stderr().slice(from))) return true;
        if (!running(w)) throw new Error(`it exited with ${String(w.child.exitCode)}: ${w.stderr()}`);
        return false;
      },
      ms,
      { intervalMs: 50, explain: evidence },
    );
  }

  async function startAgent(i: number): Promise<void> {
    agents.set(i, await startNodeAgent(lab, node(i), agentArgs));
  }

  async function mdbDsts(i: number): Promise<string[]> {
    return (await new IpClient(runner, node(i).netns).bridge.mdb(DEV))
      .filter((e) => e.grp === G)
      .map((e) => e.dst!)
      .sort();
  }

  test('baseline: the sandbox holds no capability inside the pod, and nothing crosses nodes', async (t) => {
    if (!needRoot(t)) return;
    const st = await runInNetns(pod('n1p1').netns, [...SANDBOX, 'cat', '/proc/self/status']);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    assert.match(st.stdout, /^CapEff:\s+0+$/m);
    assert.match(st.stdout, /^CapBnd:\s+0+$/m);
    const denied = await runInNetns(pod('n1p1').netns, [...SANDBOX, 'ip', 'link', 'add', 'kmcwx', 'type', 'veth', 'peer', 'name', 'kmcwy']);
    assert.notEqual(denied.code, 0, 'the sandbox must not be able to create a link');
    const rx = await startNodeReceiver(pod('n1p1').netns, { port: PORT, groups: [G, LL] });
    for (const dst of [G, LL, BC]) await sendFromPod(pod('n2p1').netns, dst, { port: PORT, count: N, intervalMs: 5 });
    await settle(300);
    const rep = await rx.stop();
    for (const dst of [G, LL, BC]) assert.equal(receivedAny(rep, dst), 0, `${dst} crossed nodes without kmcast: the lab cheats`);
  });

  test('(a) started before any node agent runs, the wait keeps waiting: the agent is unreachable', async (t) => {
    if (!needRoot(t)) return;
    w11 = startWait(pod('n1p1'));
    w21 = startWait(pod('n2p1'));
    w12 = startWait(pod('n1p2'));
    for (const w of [w11, w21, w12]) await seen(w, /the node agent at http:\/\/172\.31\.\d\.2:9471 is unreachable \(ECONNREFUSED\)/);
    await settle(3000); // an observation window: nothing may end the waits meanwhile
    for (const w of [w11, w21, w12]) assert.ok(running(w), `${w.pod.name}'s wait must still run without an agent: ${w.stderr()}`);
    assert.doesNotMatch(w11.stderr(), /programmed/);
  });

  test('(b) the node agents start: the wait exits 0 once programmed, and the pod receives right then', async (t) => {
    if (!needRoot(t)) return;
    const t0 = Date.now();
    await startAgent(1);
    await startAgent(2);
    const [c11, c21] = await Promise.all([w11.exited, w21.exited]);
    const took = Date.now() - t0;
    assert.equal(c11, 0, w11.stderr());
    assert.equal(c21, 0, w21.stderr());
    assert.match(w11.stderr(), /pod 10\.244\.1\.11 is programmed in domain kmcast-peers\.default\.svc\.cluster\.local \(host veth kmcv1\); the other node heard; starting the app/);
    t.diagnostic(`both waits exited 0 ${took} ms after the agents were started`);
    // The app starts now: flooded kinds must already arrive, nothing waited for.
    const rx = await startNodeReceiver(pod('n1p1').netns, { port: PORT, groups: [G, LL] });
    for (const dst of [LL, BC]) await sendFromPod(pod('n2p1').netns, dst, { port: PORT, count: N, intervalMs: 5 });
    // 239.x is replicated per group: once node 2 learned the join (as an IGMP snooping switch would).
    await waitFor('node 2 replicates G to node 1', async () => (await mdbDsts(2)).join() === node(1).underlayIp, 10_000, { intervalMs: 50, explain: evidence });
    await sendFromPod(pod('n2p1').netns, G, { port: PORT, count: N, intervalMs: 5 });
    await rx.waitTotal(3 * N, 5000).catch(() => undefined); // the assertions below say what is missing
    await settle(300);
    const rep = await rx.stop();
    for (const dst of [LL, BC, G]) {
      assert.equal(received(rep, dst, pod('n2p1').ip), N, `${dst} from n2p1 exactly ${N} times right after the wait: ${JSON.stringify(rep.counts)}`);
      assert.equal(receivedAny(rep, dst), N, `${dst}: nothing else: ${JSON.stringify(rep.counts)}`);
    }
  });

  test('kmcast doctor --node on node 1 with its agent running: every check OK', async (t) => {
    if (!needRoot(t)) return;
    const r = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'doctor', '--node', '--json'], 20_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const checks = (JSON.parse(r.stdout) as { checks: Array<{ id: string; status: string; detail: string }> }).checks;
    assert.deepEqual(
      checks.map((c) => `${c.id} ${c.status}`),
      ['node-capability OK', 'node-nft-netdev OK', 'node-netns-dir OK', 'node-agent OK', 'node-key OK', 'node-limits OK', 'node-oversize OK'],
      JSON.stringify(checks),
    );
    assert.match(checks[3]!.detail, /ready, 1 domains, 1 local members/);
    // Nothing was installed by the probe.
    const tables = await runner.run(['nft', 'list', 'tables'], { netns: node(1).netns });
    assert.doesNotMatch(tables.stdout, /kmcdoctor/);
  });

  test('(c) a pod in no domain is told not_member and does not start', async (t) => {
    if (!needRoot(t)) return;
    await seen(w12, /the node agent lists pod 10\.244\.1\.12 in no domain yet/);
    await settle(2000); // an observation window: the wait must not end meanwhile
    assert.ok(running(w12), `n1p2 is in no domain: its wait must not exit: ${w12.stderr()}`);
  });

  test('(d) the node agent stopped with SIGTERM, then SIGKILL, meanwhile: the wait survives and completes', async (t) => {
    if (!needRoot(t)) return;
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const from = w12.stderr().length;
      await agents.get(1)!.stop(signal);
      agents.delete(1);
      await seen(w12, /is unreachable \(ECONNREFUSED\)/, from);
      assert.ok(running(w12), `the wait survives the agent's ${signal}`);
      const back = w12.stderr().length;
      await startAgent(1);
      await seen(w12, /lists pod 10\.244\.1\.12 in no domain yet/, back);
      assert.ok(running(w12), `restarted after ${signal}: still not a member, still waiting`);
    }
    await setServiceMembers(
      lab,
      ['n1p1', 'n1p2', 'n2p1', 'n2p2'].map((n) => pod(n).ip),
    );
    assert.equal(await w12.exited, 0, w12.stderr());
    assert.match(w12.stderr(), /pod 10\.244\.1\.12 is programmed in domain kmcast-peers/);
    assert.equal((await netnsFetch(node(1).netns, '/readyz', NODE_HTTP_PORT)).status, 200);
    const rx = await startNodeReceiver(pod('n1p2').netns, { port: PORT, groups: [LL] });
    for (const dst of [LL, BC]) await sendFromPod(pod('n2p2').netns, dst, { port: PORT, count: N, intervalMs: 5 });
    await rx.waitTotal(2 * N, 5000).catch(() => undefined); // the assertions below say what is missing
    await settle(300);
    const rep = await rx.stop();
    for (const dst of [LL, BC]) assert.equal(received(rep, dst, pod('n2p2').ip), N, `${dst} from n2p2 to the late member n1p2: ${JSON.stringify(rep.counts)}`);
  });

  async function chains(i: number): Promise<ReturnType<typeof parseRuleset>> {
    return parseRuleset((await runner.run(['nft', '-j', 'list', 'table', 'netdev', NODE_TABLE], { netns: node(i).netns })).stdout);
  }

  test('(e) a member pod deleted and re-created with the same IP is served again, exactly once', async (t) => {
    if (!needRoot(t)) return;
    const victim = pod('n1p1');
    const sender = pod('n2p1');
    const oldVeth = 'kmcv1';
    const before0 = await chains(1);
    assert.ok(before0.has(captureChainName(oldVeth)), `baseline: the victim's capture chain exists: ${[...before0.keys()].join(' ')}`);
    const others = ['n1p2', 'n2p2'].map(pod);
    const rxOld = await startNodeReceiver(victim.netns, { port: PORT, groups: [G] });
    const rxOthers = await Promise.all(others.map((p) => startNodeReceiver(p.netns, { port: PORT, groups: [G] })));
    await waitFor('node 2 replicates G to node 1', async () => (await mdbDsts(2)).join() === node(1).underlayIp, 10_000, { intervalMs: 50, explain: evidence });
    const total = 250;
    const flowing = sendFromPod(sender.netns, G, { port: PORT, count: total, intervalMs: 20 });
    await rxOld.waitTotal(1, 5000);
    assert.ok(received(await rxOld.stop(), G, sender.ip) > 0, 'the victim was receiving when it was deleted');
    await removePod(lab, victim, runner);
    const t0 = Date.now();
    const fresh = await addPod(lab, 1, runner, { ip: victim.ip });
    assert.equal(fresh.ip, victim.ip);
    assert.notEqual(fresh.netns, victim.netns);
    const w = startWait(fresh);
    assert.equal(await w.exited, 0, w.stderr());
    const took = Date.now() - t0;
    t.diagnostic(`re-created pod ${fresh.name} (${fresh.ip}) programmed ${took} ms after it was created`);
    assert.ok(took < 15_000, `served again within seconds, took ${took} ms`);
    assert.match(w.stderr(), /\(host veth kmcv3\)/, 'the new pod is programmed on its new veth');
    await flowing;
    await Promise.all(rxOthers.map((r) => r.waitTotal(total, 5000).catch(() => undefined))); // the assertions below say what is missing
    await settle(300);
    const reps = await Promise.all(rxOthers.map((r) => r.stop()));
    for (const [i, rep] of reps.entries()) {
      assert.equal(received(rep, G, sender.ip), total, `${others[i]!.name} got all ${total} exactly once while ${victim.name} was re-created`);
      assert.equal(receivedAny(rep, G), total, `${others[i]!.name}: only the sender`);
    }
    const ch = await chains(1);
    assert.equal(ch.has(captureChainName(oldVeth)), false, `the old veth's chain is gone: ${[...ch.keys()].join(' ')}`);
    assert.ok(ch.has(captureChainName('kmcv3')), 'the new veth has a capture chain');
    assert.deepEqual([...ch.get(deliveryChainName(100))!.dups].sort(), ['kmcv2', 'kmcv3'], 'delivery from the overlay: the two live pods, once each');
    assert.equal(
      [...ch.values()].some((c) => c.stale),
      false,
      'no rule points at a dead ifindex',
    );

    // Both ways, every kind, exactly once: to the new pod from the other node and from its own node, and from it.
    const round = async (from: LabPod, to: LabPod[]): Promise<void> => {
      // The previous receivers' leaves first: an entry about to be withdrawn would otherwise pass
      // for one of this round's joins, and the datagrams sent meanwhile fall into the gap.
      await waitFor(`no node replicates ${G} any more`, async () => (await mdbDsts(1)).length === 0 && (await mdbDsts(2)).length === 0, 15_000, { intervalMs: 50, explain: evidence });
      const rx = await Promise.all(to.map((p) => startNodeReceiver(p.netns, { port: PORT, groups: [G, LL] })));
      await waitFor(`${from.name}'s node replicates G to the other node`, async () => (await mdbDsts(from.node)).join() === node(from.node === 1 ? 2 : 1).underlayIp, 10_000, {
        intervalMs: 50,
        explain: evidence,
      });
      for (const dst of [G, LL, BC]) await sendFromPod(from.netns, dst, { port: PORT, count: N, intervalMs: 5 });
      await Promise.all(rx.map((r) => r.waitTotal(3 * N, 5000).catch(() => undefined))); // the assertions below say what is missing
      await settle(300);
      for (const [i, r] of rx.entries()) {
        const rep = await r.stop();
        for (const dst of [G, LL, BC]) {
          assert.equal(received(rep, dst, from.ip), N, `${to[i]!.name} got ${dst} from ${from.name} exactly ${N} times: ${JSON.stringify(rep.counts)}`);
          assert.equal(receivedAny(rep, dst), N, `${to[i]!.name}: ${dst} only from ${from.name}`);
        }
      }
    };
    await round(sender, [fresh, pod('n1p2'), pod('n2p2')]);
    await round(pod('n1p2'), [fresh, sender, pod('n2p2')]);
    await round(fresh, [pod('n1p2'), sender, pod('n2p2')]);
  });
});
