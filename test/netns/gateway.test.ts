/**
 * `kmcast gateway` end to end: a 3-node lab (calico, bridge, calico) in node mode, and an outside
 * LAN (a switch with IGMP snooping and a querier; the node ports get a group only after an IGMP
 * report) attached to nodes 1 and 2, with two hosts that are not pods. Real peers: an iperf2
 * source and server, avahi-daemon publishing a service, python-zeroconf browsing, python3 sockets
 * joined on eth0 by index.
 *
 * Domain (VNI 100): n1p1 n1p2 | n2p1 n2p2 | n3p1 n3p2      Not a member: n2p3
 * Gateway on node 1 (and later node 2 as the second one), interface `kmclan`:
 *   239.1.1.0/24=in  224.0.0.251=both  239.2.2.2=out  239.3.3.3=both, rate 1000/s per group.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayStatus } from '../../src/gateway/status-types.js';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { iperfSend, startIperfServer } from '../../src/lab/iperf.js';
import { addPod, labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { addLan, lanMemberships } from '../../src/lab/lan.js';
import { SYSTEM_PYTHON, startAvahi, zeroconfBrowse } from '../../src/lab/mdns.js';
import type { LabLan } from '../../src/lab/types.js';
import { received, receivedAny, sendFromPod, startNodeReceiver } from '../../src/lab/node-apps.js';
import type { NodeReceiver, NodeReceiverReport } from '../../src/lab/node-apps.js';
import { agentsEvidence, KMCAST_MAIN, netnsFetch, runInNetns, spawnInNetns, startNodeAgent, waitExit, waitFor, settle } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { keepLab, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = 'kmcast-peers.default.svc.cluster.local';
const IN = '239.1.1.1';
const BURST = '239.1.1.2';
const OUT = '239.2.2.2';
const BOTH = '239.3.3.3';
const MDNS = '224.0.0.251';
const OFF = '239.9.9.9';
const PORT = 7700;
const N = 20;
const RATE = 1000;
const GROUPS = `239.1.1.0/24=in,${MDNS}=both,${OUT}=out,${BOTH}=both`;

describe('kmcast gateway: a domain and an outside LAN, both ways, exactly once', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let lan: LabLan;
  let work: string;
  const agents = new Map<number, NodeAgentHandle>();
  /** What the agents show, quoted when a wait times out. */
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => lab.nodes.find((n) => n.index === i)!;
  const MEMBERS = (): LabPod[] => ['n1p1', 'n1p2', 'n2p1', 'n2p2', 'n3p1', 'n3p2'].map(pod);
  const host = (j: number): { netns: string; ip: string } => lan.hosts.find((h) => h.name === `h${j}`)!;
  const lanIpOf = (i: number): string => lan.nodes.find((n) => n.node === i)!.ip;
  const base = ['--service', `${SERVICE}=100`, '--heartbeat-interval', '200', '--resolve-interval', '500', '--joins-interval', '1000'];
  const gatewayArgs = [...base, '--gateway-interface', 'kmclan', '--gateway-group', GROUPS, '--gateway-rate', String(RATE)];

  before(async () => {
    lab = await labUp({ id: testLabId('gw'), nodes: ['calico', 'bridge', 'calico'], podsPerNode: 2, mtu: 1500, service: SERVICE }, { runner });
    await addPod(lab, 2, runner);
    await setServiceMembers(
      lab,
      MEMBERS().map((p) => p.ip),
    );
    lan = await addLan(lab, runner, { nodes: [1, 2], hosts: 2 });
    work = mkdtempSync(join(tmpdir(), 'kmcast-gw-'));
    for (const n of lab.nodes) agents.set(n.index, await startNodeAgent(lab, n, base));
    await waitFor(
      'every member programmed',
      async () => {
        for (const n of lab.nodes) {
          const s = await nodeStatus(n.index);
          if (!s.ready || s.domains[0]!.localMembers.some((m) => !m.programmed)) return false;
        }
        return true;
      },
      30_000,
      { explain: evidence },
    );
  });

  after(async () => {
    if (keepLab()) return;
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function nodeStatus(i: number): Promise<NodeStatus> {
    return JSON.parse((await netnsFetch(node(i).netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
  }

  async function gatewayStatus(i: number): Promise<GatewayStatus> {
    const g = (await nodeStatus(i)).gateway;
    assert.ok(g, `node ${i} has no gateway in /status`);
    return g;
  }

  async function restartAgent(i: number, args: readonly string[]): Promise<void> {
    await agents.get(i)?.stop();
    agents.set(i, await startNodeAgent(lab, node(i), args));
  }

  async function waitActive(i: number, active: boolean): Promise<void> {
    await waitFor(
      `gateway on node ${i} ${active ? 'active' : 'standby'}`,
      async () => {
        const s = await nodeStatus(i).catch(() => undefined);
        return s?.gateway?.active === active && s.gateway.table.installed;
      },
      15_000,
      { intervalMs: 100, explain: evidence },
    );
  }

  /** Receivers in `where` for `groups`; started, then `act`, then their reports. */
  async function round(where: ReadonlyArray<{ name: string; netns: string }>, groups: readonly string[], act: () => Promise<void>, settleMs = 600): Promise<Map<string, NodeReceiverReport>> {
    const rx = new Map<string, NodeReceiver>();
    await Promise.all(where.map(async (w) => rx.set(w.name, await startNodeReceiver(w.netns, { port: PORT, groups, maxSeconds: 60 }))));
    await act();
    await sleep(settleMs);
    const out = new Map<string, NodeReceiverReport>();
    for (const [name, r] of rx) out.set(name, await r.stop());
    return out;
  }

  const hosts = (): Array<{ name: string; netns: string }> => [1, 2].map((j) => ({ name: `h${j}`, netns: host(j).netns }));
  const pods = (list: readonly LabPod[]): Array<{ name: string; netns: string }> => list.map((p) => ({ name: p.name, netns: p.netns }));

  /** Routable groups the LAN switch forwards to node i's port (its snooping table). */
  async function switchJoins(i: number): Promise<string[]> {
    const port = lan.nodes.find((n) => n.node === i)!.port;
    return (await lanMemberships(lab, runner))
      .filter((m) => m.port === port && !m.group.startsWith('224.0.0.'))
      .map((m) => m.group)
      .sort();
  }

  async function untilJoined(i: number, group: string): Promise<void> {
    await waitFor(`the LAN switch sends ${group} to node ${i} (IGMP report seen)`, async () => (await switchJoins(i)).includes(group), 15_000, { intervalMs: 100, explain: evidence });
  }

  test('baseline: with node agents but no gateway, nothing crosses between the LAN and the pods', async () => {
    const reports = await round([...pods(MEMBERS()), ...hosts()], [IN, OUT, MDNS], async () => {
      await sendFromPod(host(1).netns, IN, { port: PORT, count: N, intervalMs: 2 });
      await sendFromPod(host(1).netns, MDNS, { port: PORT, count: N, intervalMs: 2 });
      await sendFromPod(pod('n3p1').netns, OUT, { port: PORT, count: N, intervalMs: 2 });
      await sendFromPod(pod('n3p1').netns, MDNS, { port: PORT, count: N, intervalMs: 2 });
    });
    for (const p of MEMBERS()) {
      assert.equal(received(reports.get(p.name)!, IN, host(1).ip), 0, `${p.name} got the LAN's ${IN}`);
      assert.equal(received(reports.get(p.name)!, MDNS, host(1).ip), 0, `${p.name} got the LAN's mDNS`);
    }
    // The LAN hears its own host (the switch works) and no pod.
    assert.equal(received(reports.get('h2')!, MDNS, host(1).ip), N, 'h2 did not hear h1 on the LAN');
    for (const h of ['h1', 'h2']) assert.equal(receivedAny(reports.get(h)!, OUT) + received(reports.get(h)!, MDNS, pod('n3p1').ip), 0, `${h} heard a pod`);
    // The pods still talk among themselves (node mode works), so the zeros above are the LAN's.
    assert.equal(received(reports.get('n1p1')!, MDNS, pod('n3p1').ip), N);
  });

  test('the gateway joins on the LAN the inbound groups members joined, only those', async () => {
    await restartAgent(1, gatewayArgs);
    await waitActive(1, true);
    // The configured link-local group is joined whatever the members did; no routable one yet.
    await waitFor('the gateway joined 224.0.0.251 on the LAN', async () => (await gatewayStatus(1)).joined.includes(MDNS), 10_000, { intervalMs: 100, explain: evidence });
    const g = await gatewayStatus(1);
    assert.deepEqual(g.joined, [MDNS], 'before any member joined an inbound group, only the configured link-local one');
    assert.deepEqual(await switchJoins(1), [], 'the switch had a routable group for node 1 before any join');
    const rx = await startNodeReceiver(pod('n3p2').netns, { port: PORT, groups: [IN], maxSeconds: 30 });
    try {
      await untilJoined(1, IN);
      assert.deepEqual((await gatewayStatus(1)).joined, [MDNS, IN]);
    } finally {
      await rx.stop();
    }
    await waitFor('the gateway leaves the group when the last member does', async () => !(await gatewayStatus(1)).joined.includes(IN), 10_000, { intervalMs: 100, explain: evidence });
  });

  test('an iperf2 source on the LAN reaches every member on every node exactly once, 0% loss', async () => {
    const others = MEMBERS().filter((p) => p.name !== 'n3p2');
    const rx = new Map<string, NodeReceiver>();
    await Promise.all([...others, pod('n2p3')].map(async (p) => rx.set(p.name, await startNodeReceiver(p.netns, { port: PORT, groups: [IN], maxSeconds: 60 }))));
    const server = await startIperfServer(pod('n3p2').netns, { group: IN, port: PORT });
    let sent = 0;
    let loss: { lost: number; total: number } | undefined;
    try {
      await untilJoined(1, IN);
      await untilReplicated(1, IN, [2, 3]);
      sent = (await iperfSend(host(1).netns, { group: IN, port: PORT, pps: 800, seconds: 3, size: 200 })).sent;
      await settle(600);
    } finally {
      loss = await server.stop();
    }
    // iperf2's own accounting (datagram ids) on a real iperf2 server: nothing lost. Its total is
    // every data datagram the client sent (its "Sent" count also holds the closing one).
    assert.ok(loss, 'the iperf2 server in n3p2 printed no report');
    assert.equal(loss.lost, 0, `iperf2 server lost ${loss.lost}/${loss.total}`);
    assert.ok(sent > 2000 && loss.total >= sent - 1 && loss.total <= sent, `iperf2 server saw ${loss.total}, the client sent ${sent}`);
    const total = loss.total;
    for (const [name, r] of rx) {
      const report = await r.stop();
      const want = name === 'n2p3' ? 0 : total;
      assert.equal(received(report, IN, host(1).ip), want, `${name}: ${received(report, IN, host(1).ip)} datagrams from the LAN source, want ${want}`);
    }
    const t = (await gatewayStatus(1)).traffic.find((x) => x.group === IN && x.direction === 'in');
    assert.equal(t?.datagrams, total, 'the gateway counted a different number of inbound datagrams');
  });

  test('a pod stream reaches the LAN once, from the node address (SNAT); the other pods still get it', async () => {
    const reports = await round([...hosts(), ...pods([pod('n1p1'), pod('n2p1')])], [OUT, MDNS], async () => {
      await untilReplicated(3, OUT, [1, 2]);
      await sendFromPod(pod('n3p1').netns, OUT, { port: PORT, count: N, intervalMs: 5 });
      await sendFromPod(pod('n1p2').netns, MDNS, { port: PORT, count: N, intervalMs: 5 });
    });
    for (const h of ['h1', 'h2']) {
      const r = reports.get(h)!;
      assert.equal(received(r, OUT, lanIpOf(1)), N, `${h}: ${JSON.stringify(r.counts)}`);
      assert.equal(receivedAny(r, OUT), N, `${h} got ${OUT} from another source: ${JSON.stringify(r.counts)}`);
      // mDNS from a pod on the gateway node itself (its capture forwards into the domain device).
      assert.equal(received(r, MDNS, lanIpOf(1)), N, `${h} mDNS: ${JSON.stringify(r.counts)}`);
    }
    assert.equal(received(reports.get('n2p1')!, MDNS, pod('n1p2').ip), N, 'the domain lost its own mDNS');
    assert.equal(received(reports.get('n1p1')!, MDNS, pod('n1p2').ip), N);
  });

  test('3000-byte datagrams, fragmented by their senders, cross whole both ways (SNAT rewrites every fragment)', async () => {
    const BIG = 3000;
    const inbound = await round(pods(MEMBERS()), [IN], async () => {
      await untilJoined(1, IN);
      await untilReplicated(1, IN, [2, 3]);
      await sendFromPod(host(1).netns, IN, { port: PORT, count: N, intervalMs: 5, size: BIG });
    });
    for (const p of MEMBERS()) assert.equal(received(inbound.get(p.name)!, IN, host(1).ip), N, `${p.name}: ${JSON.stringify(inbound.get(p.name)!.counts)}`);
    const outbound = await round([...hosts(), ...pods([pod('n1p1'), pod('n2p1')])], [OUT], async () => {
      await untilReplicated(3, OUT, [1, 2]);
      await sendFromPod(pod('n3p1').netns, OUT, { port: PORT, count: N, intervalMs: 5, size: BIG });
    });
    for (const h of ['h1', 'h2']) {
      const r = outbound.get(h)!;
      assert.equal(received(r, OUT, lanIpOf(1)), N, `${h}: ${JSON.stringify(r.counts)}`);
      assert.equal(receivedAny(r, OUT), N, `${h} got ${OUT} from another source: ${JSON.stringify(r.counts)}`);
    }
    for (const p of ['n1p1', 'n2p1']) assert.equal(received(outbound.get(p)!, OUT, pod('n3p1').ip), N, `${p}: the domain still gets the big datagrams`);
  });

  test('groups that are not configured, or not in that direction, do not cross', async () => {
    const reports = await round([...hosts(), ...pods(MEMBERS())], [OFF, IN, OUT], async () => {
      await sendFromPod(host(1).netns, OFF, { port: PORT, count: N, intervalMs: 2 });
      await sendFromPod(host(1).netns, OUT, { port: PORT, count: N, intervalMs: 2 });
      await sendFromPod(pod('n3p1').netns, OFF, { port: PORT, count: N, intervalMs: 2 });
      await sendFromPod(pod('n3p1').netns, IN, { port: PORT, count: N, intervalMs: 2 });
    });
    for (const p of MEMBERS()) {
      assert.equal(received(reports.get(p.name)!, OFF, host(1).ip), 0, `${p.name} got unconfigured ${OFF} from the LAN`);
      assert.equal(received(reports.get(p.name)!, OUT, host(1).ip), 0, `${p.name} got outbound-only ${OUT} from the LAN`);
    }
    assert.equal(received(reports.get('n1p1')!, OFF, pod('n3p1').ip), N, 'the domain lost its own unconfigured group');
    for (const h of ['h1', 'h2']) {
      const r = reports.get(h)!;
      assert.equal(receivedAny(r, OFF) - received(r, OFF, host(1).ip), 0, `${h} got unconfigured ${OFF} from a pod: ${JSON.stringify(r.counts)}`);
      assert.equal(receivedAny(r, IN), 0, `${h} got inbound-only ${IN} from a pod`);
    }
  });

  test('no loop when the LAN hears the outbound traffic back (hairpin on the gateway port)', async () => {
    await runInNetns(lan.netns, ['bridge', 'link', 'set', 'dev', 'kmcl1', 'hairpin', 'on']);
    try {
      const receivers = [...hosts(), ...pods(MEMBERS().filter((p) => p.name !== 'n3p1'))];
      const before = (await gatewayStatus(1)).traffic.find((x) => x.group === BOTH && x.direction === 'in')?.dropped.loop ?? 0;
      const reports = await round(receivers, [BOTH], async () => {
        await untilJoined(1, BOTH);
        await untilReplicated(3, BOTH, [1, 2]);
        await sendFromPod(pod('n3p1').netns, BOTH, { port: PORT, count: N, intervalMs: 5 });
      });
      for (const h of ['h1', 'h2']) assert.equal(receivedAny(reports.get(h)!, BOTH), N, `${h}: ${JSON.stringify(reports.get(h)!.counts)}`);
      for (const p of MEMBERS().filter((x) => x.name !== 'n3p1')) {
        const r = reports.get(p.name)!;
        assert.equal(received(r, BOTH, pod('n3p1').ip), N, `${p.name}: ${JSON.stringify(r.counts)}`);
        assert.equal(receivedAny(r, BOTH), N, `${p.name} got the echo back in: ${JSON.stringify(r.counts)}`);
      }
      const loop = (await gatewayStatus(1)).traffic.find((x) => x.group === BOTH && x.direction === 'in')?.dropped.loop ?? 0;
      assert.equal(loop - before, N, 'the gateway did not see (and drop) its own outbound traffic coming back');
    } finally {
      await runInNetns(lan.netns, ['bridge', 'link', 'set', 'dev', 'kmcl1', 'hairpin', 'off']);
    }
  });

  /** Node `from` replicates `group` to every node of `to` (MDB destinations on the domain device). */
  async function untilReplicated(from: number, group: string, to: readonly number[]): Promise<void> {
    const want = to.map((i) => node(i).underlayIp);
    await waitFor(
      `node ${from} replicates ${group} to nodes ${to.join(',')}`,
      async () => {
        const have = (await new IpClient(runner, node(from).netns).bridge.mdb('kmcvx100')).filter((e) => e.grp === group).map((e) => e.dst);
        return want.every((w) => have.includes(w));
      },
      10_000,
      { intervalMs: 100, explain: evidence },
    );
  }

  test('avahi-daemon on the LAN publishes a service; python-zeroconf in a pod finds it, and back', async () => {
    const avahi = await startAvahi(host(2).netns, { workDir: work, hostName: 'kmc-lan-printer', service: { name: 'kmcast-lan-printer', type: '_ipp._tcp', port: 631 }, family: 4, explain: evidence });
    try {
      const found = await zeroconfBrowse(pod('n2p1').netns, pod('n2p1').ip, '_ipp._tcp.local.', 15);
      assert.deepEqual(found['kmcast-lan-printer._ipp._tcp.local.'], [host(2).ip], `browse from n2p1 found ${JSON.stringify(found)}`);
    } finally {
      avahi.kill('SIGTERM');
      await waitExit(avahi, 3000);
    }
    // The reverse: a pod publishes, a LAN host browses. The name and port cross; the address the
    // record carries is the pod IP, which this LAN cannot route (docs/gateway.md).
    const pub = spawnInNetns(pod('n3p1').netns, [SYSTEM_PYTHON, '-c', ZC_PUBLISH_PY, pod('n3p1').ip]);
    try {
      const found = await zeroconfBrowse(host(1).netns, host(1).ip, '_http._tcp.local.', 15);
      assert.deepEqual(found['kmcast-pod._http._tcp.local.'], [pod('n3p1').ip], `browse from h1 found ${JSON.stringify(found)}`);
    } finally {
      pub.kill('SIGTERM');
      await waitExit(pub, 3000);
    }
  });

  test('a burst over --gateway-rate is cut to the rate, and every drop is counted per group', async () => {
    const before = (await gatewayStatus(1)).traffic.find((x) => x.group === BURST && x.direction === 'in');
    const reports = await round(pods([pod('n2p2')]), [BURST], async () => {
      await untilJoined(1, BURST);
      await untilReplicated(1, BURST, [2]);
      // 3000 datagrams as fast as python sends them: far above 1000/s with a burst of 100.
      await sendFromPod(host(1).netns, BURST, { port: PORT, count: 3000, intervalMs: 0 });
    });
    const got = received(reports.get('n2p2')!, BURST, host(1).ip);
    const after = (await gatewayStatus(1)).traffic.find((x) => x.group === BURST && x.direction === 'in')!;
    const passed = after.datagrams - (before?.datagrams ?? 0);
    const dropped = (after.dropped.rate ?? 0) - (before?.dropped.rate ?? 0);
    assert.ok(got > 0 && got < 3000, `n2p2 received ${got} of 3000`);
    assert.equal(got, passed, 'the pod received a different number than the gateway let through');
    assert.equal(passed + dropped, 3000, `passed ${passed} + dropped ${dropped} != 3000`);
    const metrics = (await netnsFetch(node(1).netns, '/metrics', NODE_HTTP_PORT)).body;
    assert.match(
      metrics,
      new RegExp(`kmcast_gateway_dropped_total\\{domain="${SERVICE.replace(/\./g, '\\.')}",group="${BURST.replace(/\./g, '\\.')}",direction="in",reason="rate"\\} ${after.dropped.rate}`),
    );
    assert.match(metrics, /kmcast_gateway_active\{domain="[^"]+"\} 1/);
  });

  test('two gateways for one domain: one forwards, no duplicate; the standby takes over on SIGTERM', async () => {
    await restartAgent(2, gatewayArgs);
    await waitActive(2, false);
    const standby = await gatewayStatus(2);
    assert.equal(standby.activeGateway, node(1).underlayIp);
    // Each knows the other's outside address: what it drops as an echo even in a split brain.
    assert.deepEqual(standby.gateways, [{ ip: node(1).underlayIp, state: 'alive', address: lanIpOf(1) }]);
    assert.equal((await nodeStatus(3)).domains[0]!.gateway, node(1).underlayIp, 'a member node does not see the active gateway');
    const exactlyOnce = async (label: string, receivers: readonly LabPod[], sourceNode: number): Promise<void> => {
      const reports = await round([...hosts(), ...pods(receivers)], [IN, OUT], async () => {
        await untilJoined(sourceNode, IN);
        await untilReplicated(
          sourceNode,
          IN,
          [...new Set(receivers.map((p) => p.node))].filter((i) => i !== sourceNode),
        );
        await untilReplicated(3, OUT, [sourceNode]);
        await sendFromPod(host(1).netns, IN, { port: PORT, count: N, intervalMs: 5 });
        await sendFromPod(pod('n3p1').netns, OUT, { port: PORT, count: N, intervalMs: 5 });
      });
      for (const p of receivers) assert.equal(receivedAny(reports.get(p.name)!, IN), N, `${label}: ${p.name} ${JSON.stringify(reports.get(p.name)!.counts)}`);
      for (const h of ['h1', 'h2']) {
        assert.equal(receivedAny(reports.get(h)!, OUT), N, `${label}: ${h} ${JSON.stringify(reports.get(h)!.counts)}`);
        assert.equal(received(reports.get(h)!, OUT, lanIpOf(sourceNode)), N, `${label}: ${h} not from node ${sourceNode}`);
      }
    };
    await exactlyOnce(
      'both gateways up',
      MEMBERS().filter((p) => p.name !== 'n3p1'),
      1,
    );
    await agents.get(1)!.stop();
    agents.delete(1);
    await waitActive(2, true);
    await exactlyOnce(
      'node 1 stopped',
      MEMBERS().filter((p) => p.node !== 1 && p.name !== 'n3p1'),
      2,
    );
    // Node 1 back: lower IP, so it takes over again and node 2 stands by.
    agents.set(1, await startNodeAgent(lab, node(1), gatewayArgs));
    await waitActive(1, true);
    await waitActive(2, false);
    await exactlyOnce(
      'node 1 back',
      MEMBERS().filter((p) => p.name !== 'n3p1'),
      1,
    );
  });

  test('the interface gets a new address: joins and SNAT follow it; no address: no forwarding', async () => {
    const dev = (cmd: string[]): Promise<unknown> => runner.run(['ip', ...cmd], { netns: node(1).netns });
    const NEW = '192.168.250.9';
    await dev(['addr', 'flush', 'dev', 'kmclan']);
    try {
      await waitFor('the gateway stops forwarding when kmclan loses its address', async () => !(await gatewayStatus(1)).table.installed, 15_000, { intervalMs: 100, explain: evidence });
      assert.match((await gatewayStatus(1)).table.lastError ?? '', /kmclan has no IPv4 address/);
      assert.deepEqual((await gatewayStatus(1)).joined, [], 'joins kept on an interface without an address');
      await dev(['addr', 'add', `${NEW}/24`, 'dev', 'kmclan']);
      await waitFor(
        `the gateway sends from ${NEW}`,
        async () => {
          const g = await gatewayStatus(1);
          return g.address === NEW && g.table.installed && g.joined.includes(MDNS);
        },
        15_000,
        { intervalMs: 100, explain: evidence },
      );
      const reports = await round(hosts(), [OUT], async () => {
        await sendFromPod(pod('n3p1').netns, OUT, { port: PORT, count: N, intervalMs: 5 });
      });
      for (const h of ['h1', 'h2']) assert.equal(received(reports.get(h)!, OUT, NEW), N, `${h}: ${JSON.stringify(reports.get(h)!.counts)}`);
    } finally {
      await dev(['addr', 'flush', 'dev', 'kmclan']);
      await dev(['addr', 'add', `${lanIpOf(1)}/24`, 'dev', 'kmclan']);
    }
    await waitFor('the gateway is back on its address', async () => (await gatewayStatus(1)).address === lanIpOf(1), 15_000, { intervalMs: 100, explain: evidence });
  });

  test('kmcast status and doctor --node show the gateway; a bad --gateway-interface exits 2 naming it', async () => {
    const st = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'status', '--node'], 10_000);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /gateway ACTIVE {2}domain \S+ {2}interface kmclan 192\.168\.250\.1/);
    assert.match(st.stdout, new RegExp(`${IN.replace(/\./g, '\\.')} +in +\\d+`));
    const doc = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'doctor', '--node', '--json'], 20_000);
    const checks = JSON.parse(doc.stdout) as { checks: Array<{ id: string; status: string; detail: string }> };
    const gw = checks.checks.find((c) => c.id === 'node-gateway');
    assert.ok(gw, `doctor --node has no gateway check: ${doc.stdout}`);
    assert.match(gw.detail, /^active; joined 224\.0\.0\.251/);
    await runner.run(['ip', 'link', 'add', 'kmcnoip0', 'type', 'veth', 'peer', 'name', 'kmcnoip1'], { netns: node(3).netns });
    const cases: Array<[string, RegExp]> = [
      ['kmcnope', /--gateway-interface: kmcnope does not exist on this node/],
      ['kmcnoip0', /--gateway-interface: kmcnoip0 has no IPv4 address/],
    ];
    for (const [dev, message] of cases) {
      const r = await runInNetns(
        node(3).netns,
        [
          process.execPath,
          KMCAST_MAIN,
          'gateway',
          '--service',
          SERVICE,
          '--peers',
          node(1).underlayIp,
          '--http',
          'off',
          '--insecure-no-key',
          '--gateway-interface',
          dev,
          '--gateway-group',
          `${IN}=in`,
        ],
        20_000,
      );
      assert.equal(r.code, 2, `${dev}: exit ${String(r.code)} ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace for a user mistake');
    }
  });
});

const ZC_PUBLISH_PY = `
import socket, sys, time
from zeroconf import IPVersion, ServiceInfo, Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]], ip_version=IPVersion.V4Only)
zc.register_service(ServiceInfo('_http._tcp.local.', 'kmcast-pod._http._tcp.local.', addresses=[socket.inet_aton(sys.argv[1])], port=8080, server='kmcast-pod.local.'))
while True: time.sleep(1)
`;
