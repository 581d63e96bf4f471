/**
 * Sidecar mode on an IPv6-ONLY cluster (calico, bridge, calico): pods, nodes, router and the lab
 * DNS have IPv6 addresses only and the Services answer AAAA and no A. Each member's sidecar takes
 * the pod's IPv6 address as vx0's underlay address, finds its peers from AAAA records, sends VXLAN
 * over IPv6 and speaks the control protocol over udp6. Unprivileged python3 apps join ff05::1:3
 * and ff02::fb on eth0 by interface index and send naming eth0 (the capture moves their
 * datagrams into vx0).
 *
 * MTUs: VXLAN over IPv6 adds 70 bytes and the kernel never fragments it, so the pods have 1430 on
 * the 1500 underlay (as a CNI leaving room for the encapsulation gives them) and vx0 has 1360;
 * 3000-byte datagrams are fragmented by the sender's kernel, each fragment one VXLAN packet: sent
 * naming no interface at vx0's MTU (its route), sent naming eth0 at the MTU of the sidecar's
 * eth0 multicast route (vx0's too).
 *
 * Domain A (the lab service): n1p1 | n2p1 n2p2 | n3p1; n3p1 joins ff02::fb only.
 * Domain B (its own service and VNI): n1p2 n3p2.   No agent: n1p3 n2p3 n3p3.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { startCapture } from '../../src/lab/capture.js';
import { labDown, labUp, setDnsRecord, setServiceMembers } from '../../src/lab/lab.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { KMCAST_MAIN, runInNetns, settle, waitFor } from '../../src/lab/process.js';
import { sendMcast6 } from '../../src/lab/traffic6.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { keepLab, privilegedReason, testLabId } from './harness.js';
import { sidecar6Rig } from './sidecar6-rig.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE_B = 'app-b.default.svc.cluster.local';
const G6 = 'ff05::1:3';
const LL6 = 'ff02::fb';
const PORT = 7616;
const VXLAN_PORT = 7471;
/** The pods' MTU: the underlay's 1500 less VXLAN over IPv6's 70. */
const CARRIED = 1430;
/** Over the pod MTU: fragmented by the sender's kernel. */
const BIG = 3000;

describe('sidecar mode on an IPv6-only cluster: vx0 over the pod IPv6 address, peers from AAAA', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const A = (): LabPod[] => ['n1p1', 'n2p1', 'n2p2', 'n3p1'].map(pod);
  const B = (): LabPod[] => ['n1p2', 'n3p2'].map(pod);
  const NONE = (): LabPod[] => ['n1p3', 'n2p3', 'n3p3'].map(pod);
  /** n3p1 joins ff02::fb only: it hears ff05::1:3 only if replication is wrong. */
  const groupsOf = (p: LabPod): string[] => (p.name === 'n3p1' ? [LL6] : [G6, LL6]);
  const agentArgs = ['--heartbeat-interval', '500', '--resolve-interval', '1000', '--resync-interval', '2000'];
  const rig = sidecar6Rig({ lab: () => lab, A, B, NONE, serviceB: SERVICE_B, ip6: (p) => p.ip, groupsOf, group: G6, linkLocalGroup: LL6, port: PORT, agentArgs });
  const { receivers, evidence, startReceivers, startAgents, stopAgents, status, mdbDsts, waitReplicated, got, unicastWorks } = rig;

  before(async () => {
    lab = await labUp(
      {
        id: testLabId('c6'),
        nodes: ['calico', 'bridge', 'calico'],
        podsPerNode: 3,
        mtu: 1500,
        podMtu: { 1: CARRIED, 2: CARRIED, 3: CARRIED },
        service: 'kmcast-peers.default.svc.cluster.local',
        ipv6Only: true,
      },
      { runner },
    );
    await setServiceMembers(
      lab,
      A().map((p) => p.ip),
    );
    await setDnsRecord(
      lab,
      SERVICE_B,
      B().map((p) => p.ip),
    );
  });

  after(async () => {
    await rig.stopReceivers();
    if (keepLab()) return;
    await stopAgents('SIGKILL');
    if (lab) await labDown(runner, { id: lab.spec.id });
  });

  /**
   * To each group from `sender`, tagged: a small datagram naming eth0 (the capture moves it into
   * vx0), a fragmented one naming no interface (`big`: vx0's route, fragmented at vx0's MTU) and
   * a fragmented one naming eth0 (`ebig`: fragmented at the MTU of the sidecar's eth0 multicast
   * route, vx0's; at eth0's own, each VXLAN-over-IPv6 packet would be 70 bytes too long for eth0,
   * which the kernel never fragments: docs/architecture.md, IPv6-only pods).
   */
  async function sendRound(sender: LabPod, tag: string): Promise<void> {
    for (const g of [G6, LL6]) {
      await sendMcast6(sender, g, `${tag} ${g} small`, { port: PORT, as: UNPRIVILEGED });
      await sendMcast6(sender, g, `${tag} ${g} big `.padEnd(BIG, 'x'), { port: PORT, as: UNPRIVILEGED, ifname: '' });
      await sendMcast6(sender, g, `${tag} ${g} ebig `.padEnd(BIG, 'x'), { port: PORT, as: UNPRIVILEGED });
    }
  }

  const kind = (d: { data: string }): string => (d.data.includes(' big ') ? 'big' : d.data.includes(' ebig ') ? 'ebig' : 'small');

  /**
   * Each datagram of a round from `sender` exactly once at every other member of A, whole; LL6
   * through vx0 (`big`: vx0 has the pod's global address only) from the sender's IPv6 address,
   * sent naming eth0 from its link-local one; nobody else gets any.
   */
  const assertRound = (sender: LabPod, tag: string): Promise<void> =>
    rig.assertRound(sender, tag, { labels: ['big', 'ebig', 'small'], labelOf: kind, ll6Source: (label) => (label === 'big' ? sender.ip : /^fe80:/), bigSize: BIG });

  test('baseline: the pods have no IPv4; without kmcast no multicast crosses nodes, while IPv6 unicast does', async () => {
    for (const p of A()) {
      assert.match(p.ip, /:/, `${p.name}'s address is IPv6`);
      assert.deepEqual(await new IpClient(runner, p.netns).addrs('eth0'), [], `${p.name} has no IPv4 address`);
    }
    await startReceivers();
    await unicastWorks('without kmcast');
    await sendRound(pod('n1p1'), 'base');
    // Nothing is expected anywhere: give the datagrams the time a crossing one takes.
    await settle(1500);
    for (const p of lab.pods.filter((x) => x.name !== 'n1p1')) assert.deepEqual(got(p, 'base '), [], `${p.name} heard n1p1 without kmcast`);
  });

  test('with the sidecars: every member gets every datagram of its groups exactly once, from the sender IPv6 address; nobody else', async (t) => {
    await startAgents();
    await waitReplicated();
    const a = pod('n2p1');
    const ip = new IpClient(runner, a.netns);
    const vx0 = await ip.link('vx0');
    assert.equal(vx0?.mtu, CARRIED - 70, 'vx0: the pod MTU less VXLAN over IPv6');
    assert.deepEqual(await ip.addrs('vx0'), [], 'vx0 has no IPv4 address');
    assert.deepEqual(await ip.addrs6('vx0'), [`${a.ip}/128`], "vx0 carries the pod's IPv6 address");
    assert.deepEqual(await mdbDsts(a, '::'), ['100::1'], '--unregistered drop: the IPv6 catch-all to the IPv6 blackhole');
    assert.ok(!(await mdbDsts(a, '0.0.0.0')).some((d) => !d.includes(':')), 'no IPv4 remote on an IPv6 underlay');
    const nft = await runInNetns(a.netns, ['nft', 'list', 'set', 'ip6', 'kmcast', 'peers'], 5000);
    assert.equal(nft.code, 0, `the allow-list is in the ip6 family: ${nft.stderr}`);
    for (const p of A().filter((x) => x !== a)) assert.ok(nft.stdout.includes(p.ip), `the allow-list admits ${p.name} (${p.ip}):\n${nft.stdout}`);
    const st = await status(a);
    t.diagnostic(`n2p1 /status: podIp ${st.podIp}, peers ${JSON.stringify(st.peers.map((p) => [p.ip, p.state]))}`);
    assert.equal(st.podIp, a.ip);
    assert.deepEqual(
      st.peers.map((p) => p.ip).sort(),
      A()
        .filter((p) => p !== a)
        .map((p) => p.ip)
        .sort(),
      'peers from the AAAA records',
    );
    assert.deepEqual(st.localGroups, [LL6, G6]);
    // kmcast doctor in the pod finds the same: the IPv6 underlay, its MTU and the AAAA records.
    const doctor = await runInNetns(a.netns, [process.execPath, KMCAST_MAIN, 'doctor', '--service', lab.spec.service], 30_000);
    assert.equal(doctor.code, 0, `kmcast doctor in n2p1:\n${doctor.stdout}${doctor.stderr}`);
    assert.match(doctor.stdout, /eth0 mtu 1430 -> overlay mtu 1360/);
    assert.match(doctor.stdout, /4 AAAA record\(s\) incl\. this pod/);

    for (const sender of [pod('n1p1'), pod('n2p1'), pod('n2p2')]) {
      const tag = `r-${sender.name}`;
      await sendRound(sender, tag);
      await assertRound(sender, tag);
    }
    // The sender's own socket hears its datagrams once, by the kernel's loopback, never back from the overlay.
    assert.equal(got(pod('n2p1'), 'r-n2p1 ').length, 6, `n2p1 hears its own round once: ${JSON.stringify(got(pod('n2p1'), 'r-n2p1 '))}`);
  });

  test('on the wire: one VXLAN-over-IPv6 copy per receiving pod, control over udp6', async () => {
    const sender = pod('n1p1');
    const uplink = lab.nodes.find((n) => n.index === sender.node)!.netns;
    const copies = async (group: string, tag: string): Promise<string[]> => {
      const cap = await startCapture(uplink, 'kmcup', ['ip6', 'and', 'udp', 'dst', 'port', String(VXLAN_PORT), 'and', 'src', 'host', sender.ip]);
      let lines: string[] = [];
      try {
        await sendMcast6(sender, group, tag, { port: PORT, as: UNPRIVILEGED });
        for (const p of A().filter((x) => x !== sender && groupsOf(x).includes(group))) {
          await receivers.get(p.name)!.waitUntil(`${p.name} hears ${tag}`, (all) => all.some((d) => d.data === tag), 10_000);
        }
        await settle(300);
      } finally {
        lines = await cap.stop();
      }
      return lines.map((l) => / > ([\da-f:]+)\.\d+:/.exec(l)?.[1] ?? l).sort();
    };
    const others = (g: string): string[] =>
      A()
        .filter((p) => p !== sender && groupsOf(p).includes(g))
        .map((p) => p.ip)
        .sort();
    assert.deepEqual(await copies(G6, 'wire routable'), others(G6), `${G6}: one copy per member that joined it (not ${pod('n3p1').ip})`);
    assert.deepEqual(await copies(LL6, 'wire linklocal'), others(LL6), `${LL6}: one copy per member`);
    const ctl = await startCapture(uplink, 'kmcup', ['udp', 'port', '7470']);
    await waitFor('STATE over udp6 from n1p1', async () => Promise.resolve(ctl.lines().some((l) => l.includes(` IP6 ${sender.ip}.7470 > `))), 10_000, { intervalMs: 100 });
    const lines = await ctl.stop();
    assert.deepEqual(
      lines.filter((l) => !/ IP6 /.test(l)),
      [],
      'nothing but IPv6 on the control port',
    );
  });

  test("eth0's multicast route has vx0's MTU and is kept; an app that fragments at eth0's own MTU anyway is counted and explained, not silent", async () => {
    const sender = pod('n2p2');
    const mtuRoute = async (): Promise<string> =>
      (await runInNetns(sender.netns, ['ip', '-6', 'route', 'show', 'table', 'local', 'ff00::/8', 'dev', 'eth0'])).stdout
        .split('\n')
        .filter((l) => / metric 2 /.test(l))
        .join('\n');
    assert.match(await mtuRoute(), /^multicast ff00::\/8 metric 2 mtu 1360/, "the sidecar's eth0 route, at vx0's MTU");
    // Drift: removed by someone, it is back at the next resync pass.
    await runInNetns(sender.netns, ['ip', '-6', 'route', 'del', 'multicast', 'ff00::/8', 'dev', 'eth0', 'table', 'local', 'metric', '2']);
    await waitFor("the sidecar restores eth0's MTU route", async () => / mtu 1360/.test(await mtuRoute()), 10_000, { intervalMs: 100, explain: evidence });

    // IPV6_PMTUDISC_OMIT: the app's kernel fragments at eth0's 1430 whatever the route says; each
    // fragment + 70 bytes of VXLAN over IPv6 > 1430, and the kernel never fragments it.
    const before = (await status(sender)).drops.underlayTooLong;
    assert.equal(typeof before, 'number', 'an IPv6-underlay sidecar reports the count');
    await sendMcast6(sender, G6, 'too long '.padEnd(BIG, 'x'), { port: PORT, as: UNPRIVILEGED, deviceMtu: true });
    await waitFor('the sidecar counts the VXLAN packets the kernel could not fragment', async () => ((await status(sender)).drops.underlayTooLong ?? 0) > before!, 10_000, {
      intervalMs: 200,
      explain: evidence,
    });
    const out = await runInNetns(sender.netns, [process.execPath, KMCAST_MAIN, 'status'], 20_000);
    assert.match(out.stdout, /WARNING: \d+ VXLAN packets were longer than eth0 and lost \(VXLAN over IPv6 is never fragmented\)/, out.stdout + out.stderr);
  });

  test('ping6 and IPv6 TCP keep working while the sidecars run, stop and start', async () => {
    await unicastWorks('while the sidecars run');
    await stopAgents();
    await unicastWorks('after the sidecars stopped');
    await startReceivers();
    await startAgents();
    await waitReplicated();
    await unicastWorks('after the sidecars started again');
    await sendRound(pod('n2p2'), 'again');
    await assertRound(pod('n2p2'), 'again');
  });
});
