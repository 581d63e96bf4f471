/**
 * Node mode carries IPv6 multicast, on a dual-stack lab (calico, bridge, calico): unprivileged
 * python3 apps join ff05::1:3 and ff02::fb (mDNS's group) on eth0 by interface index and send
 * with IPV6_MULTICAST_IF set to eth0's index. The underlay stays IPv4 and never forwards
 * multicast; pod IPv6 unicast is routed between nodes like IPv4.
 *
 * Domain A (VNI 100): n1p1 | n2p1 n2p2 | n3p1       Domain B (VNI 200): n3p2       No domain: n1p2
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { labDown, labUp, setDnsRecord, setServiceMembers } from '../../src/lab/lab.js';
import { startAvahi, zeroconfBrowse } from '../../src/lab/mdns.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { findPython, KMCAST_MAIN, runInNetns, startNodeAgent, waitExit, waitFor, waitPing } from '../../src/lab/process.js';
import { sendMcast6 } from '../../src/lab/traffic6.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import type { ProbeReport } from '../../src/probe/report.js';
import { keepLab, privilegedReason, testLabId } from './harness.js';
import { G6, LL6, node6Rig, SERVICE_A, SERVICE_B } from './node6-rig.js';

const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const PORT = 7606;

describe('node mode: IPv6 multicast between dual-stack pods, ND and MLD untouched', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let keyDir: string;
  let avahi: ChildProcess | undefined;
  const rig = node6Rig({ lab: () => lab, ip6: (p) => p.ip6!, port: PORT });
  const { runner, agents, receivers, evidence, pod, node, A, startReceivers, stopReceivers, startAgents, untilProgrammed, got, podProgram, mdbDsts, spoofed, unicastWorks } = rig;
  const agentArgs = (): string[] => ['--service', `${SERVICE_A}=100`, '--service', `${SERVICE_B}=200`, '--key-file', join(keyDir, 'key'), '--heartbeat-interval', '1000', '--resolve-interval', '1000'];

  before(async () => {
    lab = await labUp({ id: testLabId('n6'), nodes: ['calico', 'bridge', 'calico'], podsPerNode: 2, mtu: 1500, service: SERVICE_A, ipv6: true }, { runner });
    // A dual-stack headless Service answers A and AAAA; the agents find members by A.
    await setServiceMembers(
      lab,
      A().flatMap((p) => [p.ip, p.ip6!]),
    );
    await setDnsRecord(lab, SERVICE_B, [pod('n3p2').ip, pod('n3p2').ip6!]);
    keyDir = mkdtempSync(join(tmpdir(), 'kmcast-node6-key-'));
    writeFileSync(join(keyDir, 'key'), `hex:${randomBytes(32).toString('hex')}\n`);
  });

  after(async () => {
    await stopReceivers();
    avahi?.kill('SIGTERM');
    if (keepLab()) return;
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  /** The sender's own socket hears its datagrams once (IPV6_MULTICAST_LOOP, the kernel's): never a second copy back from the overlay. */
  const ownLoop = (tag: string, g: string): string[] => [`${tag} ${g} big`, `${tag} ${g} small`];

  test('baseline: without kmcast no IPv6 multicast crosses nodes, while IPv6 unicast does', async () => {
    await startReceivers();
    for (const [a, b] of [
      ['n1p1', 'n3p1'],
      ['n2p1', 'n1p1'],
    ] as const) {
      await waitPing(pod(a), pod(b).ip6!);
    }
    await rig.assertNothingCrosses('base');
    // avahi-daemon with use-ipv6=yes (and IPv4 off) in n3p1 publishes a printer; from node 1 nobody sees it yet.
    avahi = await startAvahi(pod('n3p1').netns, { workDir: keyDir, hostName: 'kmc-v6-printer', service: { name: 'kmcast-v6-printer', type: '_ipp._tcp', port: 631 }, family: 6 });
    assert.deepEqual(await zeroconfBrowse(pod('n1p1').netns, 'eth0', '_ipp._tcp.local.', 4, 6), {}, 'python-zeroconf in n1p1 found the printer without kmcast');
  });

  test('with the agents: every member gets every datagram exactly once, from the sender IPv6 address; nobody else', async () => {
    await startAgents(agentArgs());
    // Every member joined G6: the sender's node replicates it to both other member nodes, by MDB.
    await waitFor(`node 1 replicates ${G6} to nodes 2 and 3`, async () => (await mdbDsts(1, G6)).join() === [node(2).underlayIp, node(3).underlayIp].sort().join(), 20_000, {
      intervalMs: 200,
      explain: evidence,
    });
    assert.deepEqual(await mdbDsts(1, LL6), [], 'link-local groups get no MDB entry: they flood');
    const status = await podProgram(pod('n2p1'));
    assert.ok(status?.groups?.includes(G6), `n2p1 reports ${G6} joined: ${JSON.stringify(status?.groups)}`);
    assert.ok(!status?.groups?.includes(LL6), 'ff02::fb is not announced');

    for (const sender of [pod('n1p1'), pod('n2p1')]) {
      const tag = `r-${sender.name}`;
      await rig.assertRound(sender, tag);
      assert.deepEqual(
        got(sender, tag)
          .map((d) => `${d.data.split(' ').slice(0, 3).join(' ')}`)
          .sort(),
        [...ownLoop(tag, G6), ...ownLoop(tag, LL6)].sort(),
        `${sender.name} hears its own datagrams once, from its socket's loopback, not back from the overlay`,
      );
    }
  });

  test('avahi-daemon publishing over IPv6 only is found by python-zeroconf browsing over IPv6 only from another node', async () => {
    const found = await zeroconfBrowse(pod('n1p1').netns, 'eth0', '_ipp._tcp.local.', 15, 6);
    assert.ok(found['kmcast-v6-printer._ipp._tcp.local.']?.includes(pod('n3p1').ip6!), `browse from n1p1 found ${JSON.stringify(found)}`);
    // Stopped here: its announcements would be VXLAN packets the next test counts.
    avahi?.kill('SIGTERM');
    if (avahi) await waitExit(avahi, 3000);
    avahi = undefined;
  });

  test('kmcast probe over IPv6: two members on different nodes, unprivileged, each hears the other exactly once', async () => {
    const [a, b] = [pod('n1p1'), pod('n3p1')];
    const run = (self: LabPod, other: LabPod): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      runInNetns(
        self.netns,
        [
          ...UNPRIVILEGED,
          process.execPath,
          KMCAST_MAIN,
          'probe',
          '--json',
          '--id',
          self.name,
          '--group',
          `[ff05::1:4]:7612`,
          '--interface',
          'eth0',
          '--peers',
          other.ip6!,
          '--count',
          '50',
          '--rate',
          '100',
          '--max-loss',
          '0',
        ],
        60_000,
      );
    const runs = await Promise.all([run(a, b), run(b, a)]);
    for (const [i, r] of runs.entries()) {
      const self = [a, b][i]!;
      const other = [b, a][i]!;
      assert.equal(r.code, 0, `probe in ${self.name}: ${r.stderr}\n${r.stdout}`);
      const report = JSON.parse(r.stdout) as ProbeReport;
      const peer = report.senders.find((x) => x.address === other.ip6);
      assert.deepEqual(peer && [peer.id, peer.received, peer.lost, peer.duplicates], [other.name, 50, 0, 0], `${self.name} heard ${other.name}: ${JSON.stringify(report.senders)}`);
    }
  });

  test('one VXLAN copy per member node on the wire, for a routable and a link-local group; none for a group nobody joined', async () => {
    await rig.assertWireCopies(['udp', 'dst', 'port', '7472'], 7472, '192.0.2.1');
  });

  test('ND and MLD stay with the CNI: ping6 and IPv6 TCP keep working while the agents run, stop and start', async () => {
    await unicastWorks('while the agents run');
    await agents.get(1)!.stop('SIGTERM');
    agents.delete(1);
    await unicastWorks('after node 1 agent stopped');
    agents.set(1, await startNodeAgent(lab, node(1), agentArgs()));
    await untilProgrammed(pod('n1p1'));
    await unicastWorks('after node 1 agent restarted');
  });

  test('an unprivileged pod sending IPv6 from an address not its own (IPV6_FREEBIND) is dropped and counted', async () => {
    const fake = 'fd00:10:244:2::99';
    const spoof = `import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.setsockopt(socket.IPPROTO_IPV6,78,1)\ns.bind(('${fake}',0))\ns.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_IF,socket.if_nametoindex('eth0'))\ns.sendto(b'spoof',('${G6}',${PORT}))`;
    const before = await spoofed(2);
    const r = await runInNetns(pod('n2p2').netns, [...UNPRIVILEGED, findPython(), '-c', spoof], 10_000);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('node 2 counts the spoofed IPv6 datagram', async () => (await spoofed(2)) > before, 10_000, { intervalMs: 200, explain: evidence });
    // The pod's own IPv6 still crosses.
    await sendMcast6(pod('n2p2'), G6, 'own after spoof', { port: PORT, as: UNPRIVILEGED });
    await receivers.get('n3p1')!.waitUntil('n3p1 hears n2p2 own datagram', (all) => all.some((d) => d.data === 'own after spoof' && d.src === pod('n2p2').ip6), 10_000);
    for (const p of A().filter((x) => x.name !== 'n2p2')) assert.deepEqual(got(p, 'spoof'), [], `${p.name} got the spoofed datagram`);
  });
});
