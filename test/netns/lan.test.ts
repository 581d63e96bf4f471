/**
 * The lab's outside LAN, as root, before any gateway: the baseline the gateway tests build on.
 * The switch forwards a routable group only to ports that joined it (IGMP snooping, the bridge
 * being the querier), floods link-local 224.0.0.x, never carries pod multicast, and the underlay
 * never sees the LAN. `lab down` removes the switch and the hosts with the rest.
 */
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { ExecRunner } from '../../src/kernel/runner.js';
import { startCapture } from '../../src/lab/capture.js';
import { labDown, labHealth, labUp, loadLab } from '../../src/lab/lab.js';
import { attachLanNode, lanMemberships } from '../../src/lab/lan.js';
import { lanHostPort } from '../../src/lab/lan-plan.js';
import { NODE_LAN } from '../../src/lab/lan-plan.js';
import { received, receivedAny, sendFromPod, startNodeReceiver } from '../../src/lab/node-apps.js';
import type { NodeReceiver } from '../../src/lab/node-apps.js';
import { buildSpec, labNetnsPrefix } from '../../src/lab/plan.js';
import { KMCAST_MAIN, pingFrom, runInNetns, waitFor, settle } from '../../src/lab/process.js';
import type { Lab, LabLan } from '../../src/lab/types.js';
import { needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const id = testLabId('w');
const GROUP = '239.1.1.1';
const MDNS = '224.0.0.251';
let lab: Lab | undefined;

function theLab(t: TestContext): { l: Lab; lan: LabLan } | undefined {
  if (!needRoot(t)) return undefined;
  assert.ok(lab?.lan, 'the lab and its LAN were not built (see the before hook)');
  return { l: lab, lan: lab.lan };
}

async function labNamespaces(): Promise<string[]> {
  const out = (await runner.run(['ip', 'netns', 'list'])).stdout;
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(labNetnsPrefix(id)));
}

async function stopAll(rs: readonly NodeReceiver[]): Promise<Map<string, Awaited<ReturnType<NodeReceiver['stop']>>>> {
  const out = new Map<string, Awaited<ReturnType<NodeReceiver['stop']>>>();
  for (const r of rs) out.set(r.netns, await r.stop());
  return out;
}

describe('outside LAN (netns)', { timeout: 60_000 }, () => {
  before(async () => {
    if (privilegedReason()) return;
    lab = await labUp(buildSpec({ id, nodes: ['calico', 'bridge'], podsPerNode: 1 }), { runner, lan: { nodes: [1], hosts: 2 } });
  });

  after(async () => {
    if (privilegedReason()) return;
    await labDown(runner, { id });
  });

  test('the lab records its LAN and reports the switch and host namespaces whole', async (t) => {
    const x = theLab(t);
    if (!x) return;
    const { l, lan } = x;
    assert.deepEqual(
      lan.hosts.map((h) => [h.name, h.ip]),
      [
        ['h1', '192.168.250.11'],
        ['h2', '192.168.250.12'],
      ],
    );
    assert.deepEqual((await loadLab(id))?.lan, lan);
    const present = await labNamespaces();
    for (const ns of [lan.netns, ...lan.hosts.map((h) => h.netns)]) assert.ok(present.includes(ns), `${ns} missing from ${present.join(' ')}`);
    assert.deepEqual((await labHealth(l, runner)).missingNamespaces, []);
    const addr = await runInNetns(l.nodes[0]!.netns, ['ip', '-4', '-br', 'addr', 'show', 'dev', NODE_LAN]);
    assert.match(addr.stdout, /192\.168\.250\.1\/24/);
  });

  test('a LAN group reaches only the host that joined it; the node gets it after its IGMP report', async (t) => {
    const x = theLab(t);
    if (!x) return;
    const { l, lan } = x;
    const [h1, h2] = lan.hosts;
    const node = lan.nodes[0]!;
    const port = 7601;
    // A snooping switch sends IGMP reports only towards the querier (itself), so the node's report
    // is watched where it enters the switch, on the node's port, as a port mirror would show it.
    const igmp = await startCapture(lan.netns, node.port, ['igmp']);
    const hostIgmp = await startCapture(h1!.netns, 'eth0', ['igmp']);
    const onKmclan = await startCapture(node.netns, NODE_LAN, ['udp', 'port', String(port)]);
    const host2 = await startNodeReceiver(h2!.netns, { port, groups: [GROUP] });
    // Listens on the port in the node but has not joined: it would hear the group only if the
    // switch flooded it to the node and something else joined it there.
    const nodeIdle = await startNodeReceiver(node.netns, { port, groups: [GROUP], mode: 'none' });
    const pods = await Promise.all(l.pods.map((p) => startNodeReceiver(p.netns, { port, groups: [GROUP] })));
    // The switch forwards the group to h2's port once it learnt h2's report.
    await waitFor(`the switch to list h2's port in ${GROUP}`, async () => (await lanMemberships(l, runner)).some((m) => m.port === lanHostPort(2) && m.group === GROUP), 5000, 50);
    await sendFromPod(h1!.netns, GROUP, { port, count: 10 });
    await settle(300);
    const before = await stopAll([nodeIdle, ...pods]);
    assert.equal(onKmclan.lines().length, 0, `the switch flooded the unjoined group to the node:\n${onKmclan.lines().join('\n')}`);
    assert.equal(receivedAny(before.get(node.netns)!, GROUP), 0);
    for (const p of l.pods) assert.equal(receivedAny(before.get(p.netns)!, GROUP), 0, `pod ${p.name} got LAN multicast`);

    assert.deepEqual(
      (await lanMemberships(l, runner)).filter((m) => m.group === GROUP),
      [{ port: 'kmch2', group: GROUP }],
      'before its join the switch has only h2 in the group',
    );
    const nodeJoined = await startNodeReceiver(node.netns, { port, groups: [GROUP], mode: 'addr', ifname: NODE_LAN });
    // The node's report on its switch port and in the switch's table (a gateway's joins are
    // asserted the same way).
    await waitFor('the node IGMP report for 239.1.1.1 on its switch port', async () => igmp.lines().some((s) => s.includes(`${node.ip} > ${GROUP}`) && /report/.test(s)), 5000);
    await waitFor('the switch to list the node port in 239.1.1.1', async () => (await lanMemberships(l, runner)).some((m) => m.port === node.port && m.group === GROUP), 3000);
    await sendFromPod(h1!.netns, GROUP, { port, count: 10 });
    await settle(300);
    const [afterJoin, h2Report] = [await nodeJoined.stop(), await host2.stop()];
    const captured = await onKmclan.stop();
    const igmpLines = await igmp.stop();
    const hostIgmpLines = await hostIgmp.stop();
    assert.equal(received(afterJoin, GROUP, h1!.ip), 10, JSON.stringify(afterJoin));
    assert.equal(received(h2Report, GROUP, h1!.ip), 20, JSON.stringify(h2Report));
    assert.equal(captured.length, 10, captured.join('\n'));
    assert.ok(
      igmpLines.some((s) => /query/.test(s) && s.includes(lan.switchIp)),
      `no query from the switch:\n${igmpLines.join('\n')}`,
    );
    // A LAN host hears the switch's queries (so tcpdump there works) and leaves (to 224.0.0.2,
    // flooded), but not the node's report: that goes only towards the querier.
    assert.ok(
      hostIgmpLines.some((s) => /query/.test(s) && s.includes(lan.switchIp)),
      `h1 saw no query:\n${hostIgmpLines.join('\n')}`,
    );
    assert.equal(hostIgmpLines.filter((s) => s.includes(`${node.ip} > ${GROUP}`)).length, 0, hostIgmpLines.join('\n'));
  });

  test("a pod's multicast reaches no LAN host, and the underlay never carries LAN traffic", async (t) => {
    const x = theLab(t);
    if (!x) return;
    const { l, lan } = x;
    const [h1, h2] = lan.hosts;
    const port = 7602;
    const underlay = await startCapture(l.router, 'kmcn1', ['net', '192.168.250.0/24', 'or', 'igmp']);
    const hosts = await Promise.all(lan.hosts.map((h) => startNodeReceiver(h.netns, { port, groups: [GROUP] })));
    await waitFor(
      `the switch to list every host port in ${GROUP}`,
      async () => {
        const ms = await lanMemberships(l, runner);
        return lan.hosts.every((_, j) => ms.some((m) => m.port === lanHostPort(j + 1) && m.group === GROUP));
      },
      5000,
      50,
    );
    for (const p of l.pods) await sendFromPod(p.netns, GROUP, { port, count: 5 });
    // The receivers work: h1's own datagrams reach h2 meanwhile.
    await sendFromPod(h1!.netns, GROUP, { port, count: 5 });
    const out = await runInNetns(h1!.netns, ['ip', 'route', 'get', '172.31.1.2']);
    assert.notEqual(out.code, 0, `a LAN host has a route to the underlay: ${out.stdout}`);
    await settle(300);
    const reports = await stopAll(hosts);
    for (const p of l.pods) {
      for (const h of lan.hosts) assert.equal(received(reports.get(h.netns)!, GROUP, p.ip), 0, `${h.name} got pod ${p.name}'s multicast`);
    }
    assert.equal(received(reports.get(h2!.netns)!, GROUP, h1!.ip), 5);
    const seen = await underlay.stop();
    assert.deepEqual(seen, [], 'the underlay carried LAN traffic');
    const route = await runInNetns(l.router, ['ip', 'route', 'get', h1!.ip]);
    assert.notEqual(route.code, 0, `the router has a route to the LAN: ${route.stdout}`);
  });

  test('link-local 224.0.0.251 from a LAN host is flooded to the node and the other host', async (t) => {
    const x = theLab(t);
    if (!x) return;
    const { lan } = x;
    const [h1, h2] = lan.hosts;
    const node = lan.nodes[0]!;
    const port = 5353;
    const onKmclan = await startCapture(node.netns, NODE_LAN, ['udp', 'port', String(port)]);
    const rs = [await startNodeReceiver(node.netns, { port, groups: [MDNS], ifname: NODE_LAN }), await startNodeReceiver(h2!.netns, { port, groups: [MDNS] })];
    await sendFromPod(h1!.netns, MDNS, { port, count: 5 });
    await settle(300);
    const reports = await stopAll(rs);
    assert.equal(received(reports.get(node.netns)!, MDNS, h1!.ip), 5, JSON.stringify(reports.get(node.netns)));
    assert.equal(received(reports.get(h2!.netns)!, MDNS, h1!.ip), 5);
    assert.equal((await onKmclan.stop()).length, 5);
  });

  test('attachLanNode attaches a second node, recorded in the state', async (t) => {
    const x = theLab(t);
    if (!x) return;
    const { l, lan } = x;
    const n2 = l.nodes[1]!;
    assert.equal((await pingFrom({ name: 'n2', netns: n2.netns }, lan.hosts[0]!.ip, { timeoutMs: 500 })).received, 0, 'node 2 reached the LAN before it was attached');
    const attached = await attachLanNode(l, runner, 2);
    assert.deepEqual([attached.node, attached.ifname, attached.ip], [2, NODE_LAN, '192.168.250.2']);
    assert.equal((await pingFrom({ name: 'n2', netns: n2.netns }, lan.hosts[0]!.ip, { count: 3 })).received, 3);
    assert.deepEqual(
      (await loadLab(id))?.lan?.nodes.map((n) => n.node),
      [1, 2],
    );
    await assert.rejects(attachLanNode(l, runner, 2), /attached already/);
  });

  test('`kmcast lab down --id` removes every lab namespace, the LAN switch and hosts too, even with the state lost', async (t) => {
    const x = theLab(t);
    if (!x) return;
    const { l } = x;
    const before = await labNamespaces();
    assert.ok(before.some((n) => n.endsWith('-lan')) && before.some((n) => n.endsWith('-h2')), before.join(' '));
    await rm(l.stateDir, { recursive: true, force: true }); // as after a killed run
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [KMCAST_MAIN, 'lab', 'down', '--id', id], { stdio: 'ignore' });
      child.once('error', reject);
      child.once('close', resolve);
    });
    assert.equal(code, 0);
    assert.deepEqual(await labNamespaces(), []);
    assert.equal(existsSync(l.stateDir), false);
  });
});
