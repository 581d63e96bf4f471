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
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { startCapture } from '../../src/lab/capture.js';
import { labDown, labUp, setDnsRecord, setServiceMembers } from '../../src/lab/lab.js';
import { startAvahi, zeroconfBrowse } from '../../src/lab/mdns.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { agentsEvidence, findPython, KMCAST_MAIN, netnsFetch, runInNetns, settle, startNodeAgent, waitExit, waitFor, waitPing } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import { sendMcast6, startMcast6Receiver, tcpExchange } from '../../src/lab/traffic6.js';
import type { Datagram6, Mcast6Receiver } from '../../src/lab/traffic6.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT, podStatusPath } from '../../src/node/api.js';
import type { PodProgramStatus } from '../../src/node/api.js';
import { parseRuleset } from '../../src/node/nft.js';
import type { ProbeReport } from '../../src/probe/report.js';
import { keepLab, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE_A = 'kmcast-peers.default.svc.cluster.local';
const SERVICE_B = 'app-b.default.svc.cluster.local';
const G6 = 'ff05::1:3';
const LL6 = 'ff02::fb';
/** A routable group nobody joins: --unregistered drop (the default) sends it to no node. */
const UNJOINED6 = 'ff05::1:99';
const PORT = 7606;
const DEV_A = 'kmcvx100';
/** Over the pod MTU (1500): the sender's kernel fragments it, and its VXLAN packets are fragmented on the underlay. */
const BIG = 3000;

describe('node mode: IPv6 multicast between dual-stack pods, ND and MLD untouched', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let keyDir: string;
  let avahi: ChildProcess | undefined;
  const agents = new Map<number, NodeAgentHandle>();
  const receivers = new Map<string, Mcast6Receiver>();
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => lab.nodes.find((n) => n.index === i)!;
  const A = (): LabPod[] => ['n1p1', 'n2p1', 'n2p2', 'n3p1'].map(pod);
  const OUTSIDE = (): LabPod[] => ['n1p2', 'n3p2'].map(pod);

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
    await Promise.all([...receivers.values()].map((r) => r.stop().catch(() => [])));
    avahi?.kill('SIGTERM');
    if (keepLab()) return;
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  async function startReceivers(): Promise<void> {
    for (const r of receivers.values()) await r.stop();
    receivers.clear();
    for (const p of [...A(), ...OUTSIDE()]) receivers.set(p.name, await startMcast6Receiver(p, { groups: [G6, LL6], port: PORT, as: UNPRIVILEGED }));
  }

  /** What `p` received of the datagrams whose payload starts with `tag` (payloads cut to 40 characters, for messages). */
  const got = (p: LabPod, tag: string): Datagram6[] =>
    receivers
      .get(p.name)!
      .received()
      .filter((d) => d.data.startsWith(tag))
      .map((d) => ({ ...d, data: d.data.length > 100 ? `${d.data.slice(0, 40)}... (${d.data.length})` : d.data }));
  /** The sender's own socket hears its datagrams once (IPV6_MULTICAST_LOOP, the kernel's): never a second copy back from the overlay. */
  const ownLoop = (tag: string, g: string): string[] => [`${tag} ${g} big`, `${tag} ${g} small`];

  async function podProgram(p: LabPod): Promise<PodProgramStatus | undefined> {
    const r = await netnsFetch(node(p.node).netns, podStatusPath(p.ip), NODE_HTTP_PORT);
    return r.status === 200 ? (JSON.parse(r.body) as PodProgramStatus) : undefined;
  }

  async function mdbDsts(i: number, group: string): Promise<string[]> {
    return (await new IpClient(runner, node(i).netns).bridge.mdb(DEV_A))
      .filter((e) => e.grp === group)
      .map((e) => e.dst!)
      .sort();
  }

  /** Sends one small and one fragmented datagram to each group from `sender`, tagged `tag`. */
  async function sendRound(sender: LabPod, tag: string): Promise<void> {
    for (const g of [G6, LL6]) {
      await sendMcast6(sender, g, `${tag} ${g} small`, { port: PORT, as: UNPRIVILEGED });
      await sendMcast6(sender, g, `${tag} ${g} big `.padEnd(BIG, 'x'), { port: PORT, as: UNPRIVILEGED });
    }
  }

  test('baseline: without kmcast no IPv6 multicast crosses nodes, while IPv6 unicast does', async () => {
    await startReceivers();
    for (const [a, b] of [
      ['n1p1', 'n3p1'],
      ['n2p1', 'n1p1'],
    ] as const) {
      await waitPing(pod(a), pod(b).ip6!);
    }
    await sendRound(pod('n1p1'), 'base');
    // The datagrams sent to the calico node's own link go nowhere: give them the time a crossing one takes.
    await settle(1500);
    for (const p of [...A(), ...OUTSIDE()].filter((x) => x.name !== 'n1p1')) assert.deepEqual(got(p, 'base'), [], `${p.name} heard n1p1 without kmcast`);
    // avahi-daemon with use-ipv6=yes (and IPv4 off) in n3p1 publishes a printer; from node 1 nobody sees it yet.
    avahi = await startAvahi(pod('n3p1').netns, { workDir: keyDir, hostName: 'kmc-v6-printer', service: { name: 'kmcast-v6-printer', type: '_ipp._tcp', port: 631 }, family: 6 });
    assert.deepEqual(await zeroconfBrowse(pod('n1p1').netns, 'eth0', '_ipp._tcp.local.', 4, 6), {}, 'python-zeroconf in n1p1 found the printer without kmcast');
  });

  test('with the agents: every member gets every datagram exactly once, from the sender IPv6 address; nobody else', async () => {
    const args = ['--service', `${SERVICE_A}=100`, '--service', `${SERVICE_B}=200`, '--key-file', join(keyDir, 'key'), '--heartbeat-interval', '1000', '--resolve-interval', '1000'];
    for (const n of lab.nodes) agents.set(n.index, await startNodeAgent(lab, n, args));
    for (const p of A()) await waitFor(`${p.name} programmed`, async () => (await podProgram(p))?.programmed === true, 30_000, { intervalMs: 200, explain: evidence });
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
      await sendRound(sender, tag);
      const want = A().filter((p) => p !== sender);
      for (const p of want) {
        await receivers.get(p.name)!.waitUntil(`${p.name} hears ${tag} (4 datagrams)`, (all) => all.filter((d) => d.data.startsWith(tag)).length >= 4, 15_000);
      }
      await settle(1000);
      for (const p of want) {
        const mine = got(p, tag);
        assert.deepEqual(
          mine.map((d) => `${d.dst} ${d.data.includes(' big ') ? 'big' : 'small'}`).sort(),
          [`${G6} big`, `${G6} small`, `${LL6} big`, `${LL6} small`].sort(),
          `${p.name}: each datagram exactly once (fragmented ones whole)`,
        );
        for (const d of mine.filter((x) => x.dst === G6)) assert.equal(d.src, sender.ip6, `${p.name}: ${G6} from the sender's IPv6 address`);
        for (const d of mine.filter((x) => x.dst === LL6)) assert.match(d.src, /^fe80:/, `${p.name}: ${LL6} from the sender's link-local address`);
      }
      for (const p of OUTSIDE()) assert.deepEqual(got(p, tag), [], `${p.name} is no member and hears nothing`);
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
    const cap = await startCapture(node(1).netns, 'kmcup', ['udp', 'dst', 'port', '7472']);
    try {
      await sendMcast6(pod('n1p1'), G6, 'wire routable', { port: PORT, as: UNPRIVILEGED });
      assert.deepEqual(
        (await new IpClient(runner, node(1).netns).bridge.mdb(DEV_A)).filter((e) => e.grp === '::').map((e) => e.dst),
        ['192.0.2.1'],
        'the IPv6 catch-all of --unregistered drop',
      );
      await sendMcast6(pod('n1p1'), UNJOINED6, 'wire unjoined', { port: PORT, as: UNPRIVILEGED });
      await sendMcast6(pod('n1p1'), LL6, 'wire linklocal', { port: PORT, as: UNPRIVILEGED });
      for (const p of A().filter((x) => x.name !== 'n1p1')) {
        await receivers.get(p.name)!.waitUntil(`${p.name} hears the wire round`, (all) => all.filter((d) => d.data.startsWith('wire')).length >= 2, 10_000);
      }
      await settle(500);
    } finally {
      const lines = await cap.stop();
      const to = (ip: string): number => lines.filter((l) => l.includes(` > ${ip}.7472:`)).length;
      assert.deepEqual([to(node(2).underlayIp), to(node(3).underlayIp), lines.length], [2, 2, 4], `one copy per datagram per member node:\n${lines.join('\n')}`);
    }
  });

  /** ping6 and a 100 kB IPv6 TCP exchange between pods on different nodes (and both node styles). */
  async function unicastWorks(when: string): Promise<void> {
    for (const [a, b] of [
      ['n1p1', 'n3p1'],
      ['n3p1', 'n2p2'],
      ['n1p2', 'n2p1'],
    ] as const) {
      await waitPing(pod(a), pod(b).ip6!);
      const r = await tcpExchange(pod(a), pod(b), pod(b).ip6!, { bytes: 100_000 });
      assert.deepEqual(r, { bytes: 100_000, peer: pod(a).ip6 }, `${a} -> ${b} over IPv6 ${when}`);
    }
  }

  test('ND and MLD stay with the CNI: ping6 and IPv6 TCP keep working while the agents run, stop and start', async () => {
    await unicastWorks('while the agents run');
    await agents.get(1)!.stop('SIGTERM');
    agents.delete(1);
    await unicastWorks('after node 1 agent stopped');
    const args = ['--service', `${SERVICE_A}=100`, '--service', `${SERVICE_B}=200`, '--key-file', join(keyDir, 'key'), '--heartbeat-interval', '1000', '--resolve-interval', '1000'];
    agents.set(1, await startNodeAgent(lab, node(1), args));
    await waitFor('n1p1 programmed again', async () => (await podProgram(pod('n1p1')))?.programmed === true, 30_000, { intervalMs: 200, explain: evidence });
    await unicastWorks('after node 1 agent restarted');
  });

  test('an unprivileged pod sending IPv6 from an address not its own (IPV6_FREEBIND) is dropped and counted', async () => {
    const fake = 'fd00:10:244:2::99';
    const spoof = `import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.setsockopt(socket.IPPROTO_IPV6,78,1)\ns.bind(('${fake}',0))\ns.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_IF,socket.if_nametoindex('eth0'))\ns.sendto(b'spoof',('${G6}',${PORT}))`;
    const spoofed = async (): Promise<number> => {
      const dump = (await runner.run(['nft', '-j', 'list', 'table', 'netdev', 'kmcast-node'], { netns: node(2).netns })).stdout;
      return [...parseRuleset(dump).values()].reduce((n, c) => n + c.spoofed, 0);
    };
    const before = await spoofed();
    const r = await runInNetns(pod('n2p2').netns, [...UNPRIVILEGED, findPython(), '-c', spoof], 10_000);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('node 2 counts the spoofed IPv6 datagram', async () => (await spoofed()) > before, 10_000, { intervalMs: 200, explain: evidence });
    // The pod's own IPv6 still crosses.
    await sendMcast6(pod('n2p2'), G6, 'own after spoof', { port: PORT, as: UNPRIVILEGED });
    await receivers.get('n3p1')!.waitUntil('n3p1 hears n2p2 own datagram', (all) => all.some((d) => d.data === 'own after spoof' && d.src === pod('n2p2').ip6), 10_000);
    for (const p of A().filter((x) => x.name !== 'n2p2')) assert.deepEqual(got(p, 'spoof'), [], `${p.name} got the spoofed datagram`);
  });
});
