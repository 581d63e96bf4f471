/**
 * Sidecar mode carries IPv6 multicast, on a dual-stack lab (calico, bridge, calico; the underlay
 * stays IPv4 and forwards no multicast). Unprivileged python3 apps join ff05::1:3 and ff02::fb
 * (mDNS's group) on eth0 by interface index and send with IPV6_MULTICAST_IF set to eth0's index:
 * the eth0 capture moves their datagrams into vx0; one app sends naming no interface (vx0's
 * ff00::/8 route). Datagrams of 3000 bytes are fragmented by the sender's kernel and their VXLAN
 * packets on the underlay.
 *
 * Domain A (the lab service): n1p1 | n2p1 n2p2 | n3p1 n3p2; n3p1 joins ff02::fb only.
 * Domain B (its own service and VNI): n1p2 n2p3.   No agent: n1p3 n3p3.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ExecRunner } from '../../src/kernel/runner.js';
import { startCapture } from '../../src/lab/capture.js';
import { labDown, labUp, setDnsRecord, setServiceMembers } from '../../src/lab/lab.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { findPython, runInNetns, settle, waitFor } from '../../src/lab/process.js';
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
/** Over the pod MTU (1500): fragmented by the sender's kernel, and its VXLAN packets on the underlay. */
const BIG = 3000;

// argv: peer-ipv4 vxlan-port vni. Sends, from a plain unprivileged UDP socket, one VXLAN packet
// whose inner frame is an IPv6 router advertisement from fe80::6666 to ff02::1 (router lifetime
// 1800 s): what any member app can send to a peer's overlay port.
const RA_OVER_VXLAN_PY = `
import socket, struct, sys
peer, port, vni = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
src = socket.inet_pton(socket.AF_INET6, 'fe80::6666')
dst = socket.inet_pton(socket.AF_INET6, 'ff02::1')
ra = bytearray(struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0))
pseudo = src + dst + struct.pack('!I3xB', len(ra), 58) + ra
s = sum(struct.unpack('!%dH' % (len(pseudo) // 2), pseudo))
while s >> 16: s = (s & 0xffff) + (s >> 16)
struct.pack_into('!H', ra, 2, ~s & 0xffff)
ip6 = struct.pack('!IHBB', 6 << 28, len(ra), 58, 255) + src + dst
eth = bytes.fromhex('333300000001' + '02aabbccdd66' + '86dd')
vxlan = struct.pack('!II', 0x08000000, vni << 8)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(vxlan + eth + ip6 + bytes(ra), (peer, port))
`;

describe('sidecar mode: IPv6 multicast between dual-stack pods, ND and MLD untouched', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const A = (): LabPod[] => ['n1p1', 'n2p1', 'n2p2', 'n3p1', 'n3p2'].map(pod);
  const B = (): LabPod[] => ['n1p2', 'n2p3'].map(pod);
  const NONE = (): LabPod[] => ['n1p3', 'n3p3'].map(pod);
  /** The groups each receiver joins: every group but in n3p1, which hears ff05::1:3 only if replication is wrong. */
  const groupsOf = (p: LabPod): string[] => (p.name === 'n3p1' ? [LL6] : [G6, LL6]);
  const agentArgs = ['--heartbeat-interval', '500', '--resolve-interval', '1000', '--resync-interval', '2000'];
  const rig = sidecar6Rig({ lab: () => lab, A, B, NONE, serviceB: SERVICE_B, ip6: (p) => p.ip6!, groupsOf, group: G6, linkLocalGroup: LL6, port: PORT, agentArgs });
  const { receivers, evidence, startReceivers, startAgents, stopAgents, status, mdbDsts, waitReplicated, got, unicastWorks } = rig;

  before(async () => {
    lab = await labUp({ id: testLabId('s6'), nodes: ['calico', 'bridge', 'calico'], podsPerNode: 3, mtu: 1500, service: 'kmcast-peers.default.svc.cluster.local', ipv6: true }, { runner });
    await setServiceMembers(
      lab,
      A().flatMap((p) => [p.ip, p.ip6!]),
    );
    await setDnsRecord(
      lab,
      SERVICE_B,
      B().flatMap((p) => [p.ip, p.ip6!]),
    );
  });

  after(async () => {
    await rig.stopReceivers();
    if (keepLab()) return;
    await stopAgents('SIGKILL');
    if (lab) await labDown(runner, { id: lab.spec.id });
  });

  /** One small and one fragmented datagram to each group from `sender` (IPV6_MULTICAST_IF eth0, or `ifname`), tagged. */
  async function sendRound(sender: LabPod, tag: string, ifname = 'eth0'): Promise<void> {
    for (const g of [G6, LL6]) {
      await sendMcast6(sender, g, `${tag} ${g} small`, { port: PORT, as: UNPRIVILEGED, ifname });
      await sendMcast6(sender, g, `${tag} ${g} big `.padEnd(BIG, 'x'), { port: PORT, as: UNPRIVILEGED, ifname });
    }
  }

  /** Each datagram of a round from `sender` exactly once at every other member of A, LL6 from `ll6Source`; nobody else. */
  const assertRound = (sender: LabPod, tag: string, ll6Source: RegExp | string): Promise<void> =>
    rig.assertRound(sender, tag, { labels: ['big', 'small'], labelOf: (d) => (d.data.includes(' big ') ? 'big' : 'small'), ll6Source: () => ll6Source, bigSize: BIG });

  test('baseline: without kmcast no IPv6 multicast crosses nodes, while IPv6 unicast does', async () => {
    await startReceivers();
    await unicastWorks('without kmcast');
    await sendRound(pod('n1p1'), 'base');
    // Sent to the calico node's own link, the datagrams go nowhere: give them the time a crossing one takes.
    await settle(1500);
    for (const p of lab.pods.filter((x) => x.name !== 'n1p1')) assert.deepEqual(got(p, 'base '), [], `${p.name} heard n1p1 without kmcast`);
  });

  test('with the agents: every member gets every datagram of its groups exactly once, from the sender; nobody else', async (t) => {
    await startAgents();
    await waitReplicated();
    const a = A()[0]!;
    assert.deepEqual(await mdbDsts(a, LL6), [], 'link-local groups get no MDB entry: they flood');
    assert.deepEqual(await mdbDsts(a, '::'), ['192.0.2.1'], '--unregistered drop: the IPv6 catch-all');
    const st = await status(pod('n2p1'));
    t.diagnostic(`n2p1 /status: podIp6 ${st.podIp6}, groups ${JSON.stringify(st.groupsByInterface)}, capture ${JSON.stringify(st.capture)}`);
    assert.equal(st.podIp6, pod('n2p1').ip6);
    assert.deepEqual(st.groupsByInterface?.eth0, [LL6, G6], 'the apps eth0 groups: never all-nodes or solicited-node');
    assert.deepEqual(st.groupsByInterface?.vx0, [], "the agent's own vx0 joins are not counted as an app's");
    assert.deepEqual(st.localGroups, [LL6, G6]);

    for (const sender of [pod('n1p1'), pod('n2p1'), pod('n3p2')]) {
      const tag = `r-${sender.name}`;
      await sendRound(sender, tag);
      await assertRound(sender, tag, /^fe80:/);
    }
    // The sender's own socket hears its datagrams once, by the kernel's loopback, never back from the overlay.
    assert.equal(got(pod('n2p1'), 'r-n2p1 ').length, 4, `n2p1 hears its own round once: ${JSON.stringify(got(pod('n2p1'), 'r-n2p1 '))}`);
    const moved = (await status(pod('n1p1'))).capture;
    assert.ok((moved?.forwarded6 ?? 0) >= 4, `n1p1's capture moved its IPv6 datagrams: ${JSON.stringify(moved)}`);
  });

  test('an app that names no interface sends through vx0, from the pod IPv6 address', async () => {
    const sender = pod('n2p2');
    const route = await runInNetns(sender.netns, ['ip', '-6', 'route', 'get', G6], 5000);
    assert.match(route.stdout, / dev vx0 /, `the route to ${G6}: ${route.stdout}`);
    await sendRound(sender, 'route', '');
    // vx0 has the pod's global address only: link-local groups are sent from it too.
    await assertRound(sender, 'route', sender.ip6!);
    // Drift: the route deleted by hand comes back with the next full pass (only ours: by metric).
    const del = await runInNetns(sender.netns, ['ip', '-6', 'route', 'del', 'multicast', 'ff00::/8', 'dev', 'vx0', 'table', 'local', 'metric', '1'], 5000);
    assert.equal(del.code, 0, del.stderr);
    assert.doesNotMatch((await runInNetns(sender.netns, ['ip', '-6', 'route', 'get', G6], 5000)).stdout, / dev vx0 /, 'without it eth0 wins');
    await waitFor('the IPv6 multicast route comes back', async () => / dev vx0 /.test((await runInNetns(sender.netns, ['ip', '-6', 'route', 'get', G6], 5000)).stdout), 10_000, {
      intervalMs: 200,
      explain: evidence,
    });
  });

  test('one VXLAN copy per receiving pod on the wire: by MDB for ff05::1:3, flooded to every member for ff02::fb, none for a group nobody joined', async () => {
    const sender = pod('n1p1');
    const copies = async (group: string, tag: string): Promise<string[]> => {
      const cap = await startCapture(lab.nodes.find((n) => n.index === sender.node)!.netns, 'kmcup', ['udp', 'dst', 'port', String(VXLAN_PORT), 'and', 'src', 'host', sender.ip]);
      const heard = (async () => {
        await sendMcast6(sender, group, tag, { port: PORT, as: UNPRIVILEGED });
        for (const p of A().filter((x) => x !== sender && groupsOf(x).includes(group))) {
          await receivers.get(p.name)!.waitUntil(`${p.name} hears ${tag}`, (all) => all.some((d) => d.data === tag), 10_000);
        }
        await settle(300);
      })();
      await heard.finally(() => undefined).catch(() => undefined);
      const lines = await cap.stop();
      await heard;
      return lines.map((l) => / > ([\d.]+)\.\d+:/.exec(l)?.[1] ?? l).sort();
    };
    const others = (g: string): string[] =>
      A()
        .filter((p) => p !== sender && groupsOf(p).includes(g))
        .map((p) => p.ip)
        .sort();
    assert.deepEqual(await copies(G6, 'wire routable'), others(G6), `${G6}: one copy per member that joined it (not ${pod('n3p1').ip})`);
    assert.deepEqual(await copies(LL6, 'wire linklocal'), others(LL6), `${LL6}: one copy per member`);
    // --unregistered drop (the default): a routable IPv6 group nobody joined leaves no copy at
    // all, counted as dropped, while ff02::fb above still flooded.
    const before = (await status(sender)).drops.unregistered;
    assert.deepEqual(await copies('ff05::9:9', 'wire unjoined'), [], 'a group nobody joined: no copy on the wire');
    await waitFor('the IPv6 catch-all counts the drop', async () => (await status(sender)).drops.unregistered > before, 5000, { intervalMs: 100, explain: evidence });
  });

  test("a member app's VXLAN-wrapped router advertisement to a peer is refused and counted; without the overlay-in chain it would route the peer's IPv6", async () => {
    const attacker = pod('n1p1');
    const victim = pod('n2p1');
    const raRoutes = async (): Promise<string> => (await runInNetns(victim.netns, ['ip', '-6', 'route', 'show', 'dev', 'vx0', 'proto', 'ra'], 5000)).stdout.trim();
    const sendRa = async (): Promise<void> => {
      const r = await runInNetns(attacker.netns, [...UNPRIVILEGED, findPython(), '-c', RA_OVER_VXLAN_PY, victim.ip, String(VXLAN_PORT), '4242'], 10_000);
      assert.equal(r.code, 0, r.stderr);
    };
    assert.equal(await raRoutes(), '', 'no route learnt from an RA before');
    // Baseline: with the chain removed by hand the forged RA installs a default route via vx0.
    const del = await runInNetns(victim.netns, ['nft', 'delete', 'chain', 'netdev', 'kmcast', 'overlay-in'], 5000);
    assert.equal(del.code, 0, del.stderr);
    await waitFor(
      'the forged RA routes the unprotected pod',
      async () => {
        await sendRa();
        return /default via fe80::6666/.test(await raRoutes());
      },
      10_000,
      { intervalMs: 300, explain: evidence },
    );
    await runInNetns(victim.netns, ['ip', '-6', 'route', 'flush', 'dev', 'vx0', 'proto', 'ra'], 5000);
    // The agent's read-back sees the missing chain as drift and puts it back.
    await waitFor(
      'the overlay-in chain is back',
      async () => (await status(victim)).capture?.icmp6Refused !== undefined && (await runInNetns(victim.netns, ['nft', 'list', 'chain', 'netdev', 'kmcast', 'overlay-in'], 5000)).code === 0,
      15_000,
      {
        intervalMs: 200,
        explain: evidence,
      },
    );
    const before = (await status(victim)).capture?.icmp6Refused ?? 0;
    await waitFor(
      'the forged RA is refused and counted',
      async () => {
        await sendRa();
        return ((await status(victim)).capture?.icmp6Refused ?? 0) > before;
      },
      10_000,
      { intervalMs: 300, explain: evidence },
    );
    assert.equal(await raRoutes(), '', 'no route learnt from the refused RA');
  });

  test("vx0's own MLD never crosses the overlay; ping6 and IPv6 TCP keep working while the sidecars run, stop and start", async () => {
    for (const p of A().filter((x) => x.name !== 'n2p1')) {
      // The overlay-in chain would refuse (and count) a peer's MLD report before the IPv6 stack saw it.
      const snmp = await runInNetns(p.netns, ['cat', '/proc/net/dev_snmp6/vx0'], 5000);
      assert.match(snmp.stdout, /^Icmp6InMsgs\s+0$/m, `${p.name}'s vx0 received ICMPv6 over the overlay`);
      assert.equal((await status(p)).capture?.icmp6Refused, 0, `${p.name}: no peer's MLD report reached its vx0`);
    }
    // n2p2, not n2p1: the RA test above had n2p1's table re-written, which reset its counters.
    const held = (await status(pod('n2p2'))).capture?.icmp6Dropped ?? 0;
    assert.ok(held > 0, `n2p2's vx0 sent MLD reports for the agent's joins, and they were dropped: ${held}`);
    await unicastWorks('while the sidecars run');
    await stopAgents();
    await unicastWorks('after the sidecars stopped');
    await startReceivers();
    await startAgents();
    await waitReplicated();
    await unicastWorks('after the sidecars started again');
    await sendRound(pod('n3p1'), 'again');
    await assertRound(pod('n3p1'), 'again', /^fe80:/);
  });
});
