/**
 * The dual-stack lab, as root (issue 19's rig): a calico, a bridge and a calico node with two pods
 * each, every pod with an IPv6 address beside its IPv4 one. IPv6 unicast (ICMPv6 and TCP) must
 * cross nodes like IPv4, the lab DNS must answer AAAA, and IPv6 multicast must stay on the
 * sender's bridge: neither the nodes nor the router forward it (the baseline kmcast fixes).
 */
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ExecRunner } from '../../src/kernel/runner.js';
import { addPod, cutNode, findPod, healNode, labDown, labUp, loadLab, removePod } from '../../src/lab/lab.js';
import { buildSpec, labNetnsPrefix } from '../../src/lab/plan.js';
import { pingFrom, resolveInPod, settle, waitPing } from '../../src/lab/process.js';
import { DEFAULT_GROUP6, DEFAULT_LINKLOCAL_GROUP6, sendMcast6, startMcast6Receiver, tcpExchange } from '../../src/lab/traffic6.js';
import type { Datagram6, Mcast6Receiver } from '../../src/lab/traffic6.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const id = testLabId('l6');
let lab: Lab | undefined;

function theLab(t: TestContext): Lab | undefined {
  if (!needRoot(t)) return undefined;
  assert.ok(lab, 'the lab was not built (see the before hook)');
  return lab;
}

const ip6Of = (p: LabPod): string => {
  assert.ok(p.ip6, `pod ${p.name} has no IPv6 address`);
  return p.ip6;
};

interface Addr {
  family: string;
  local: string;
  prefixlen: number;
  scope: string;
  tentative?: boolean;
}

async function eth0Addrs(pod: LabPod): Promise<Addr[]> {
  const out = (await runner.run(['ip', '-j', '-6', 'addr', 'show', 'dev', 'eth0'], { netns: pod.netns })).stdout;
  return (JSON.parse(out) as { addr_info: Addr[] }[])[0]?.addr_info ?? [];
}

async function labNamespaces(): Promise<string[]> {
  const out = (await runner.run(['ip', 'netns', 'list'])).stdout;
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(labNetnsPrefix(id)));
}

describe('dual-stack lab (netns)', () => {
  before(async () => {
    if (privilegedReason()) return;
    lab = await labUp(buildSpec({ id, nodes: ['calico', 'bridge', 'calico'], podsPerNode: 2, ipv6: true }), { runner });
  });

  after(async () => {
    if (privilegedReason()) return;
    await labDown(runner, { id });
    assert.deepEqual(await labNamespaces(), []);
  });

  test('every pod has its planned IPv6 address, usable at once (no DAD), and the state records it', async (t) => {
    const l = theLab(t);
    if (!l) return;
    for (const pod of l.pods) {
      const global = (await eth0Addrs(pod)).filter((a) => a.scope === 'global');
      assert.deepEqual(
        global.map((a) => `${a.local}/${a.prefixlen}`),
        [`${ip6Of(pod)}/${pod.style === 'calico' ? 128 : 64}`],
        pod.name,
      );
      assert.equal(
        global.some((a) => a.tentative),
        false,
        `${pod.name}: a tentative address`,
      );
    }
    assert.equal(findPod(l, 'n2p1').ip6, 'fd00:10:244:2::11');
    assert.deepEqual(
      (await loadLab(id))?.pods.map((p) => [p.name, p.ip, p.ip6]),
      l.pods.map((p) => [p.name, p.ip, p.ip6]),
    );
    assert.equal((await loadLab(id))?.spec.ipv6, true);
  });

  test('ping6: same node (calico and bridge) and across nodes, every style pair', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const pairs: [string, string][] = [
      ['n1p1', 'n1p2'],
      ['n2p1', 'n2p2'],
      ['n1p1', 'n2p1'],
      ['n2p2', 'n3p1'],
      ['n3p2', 'n1p2'],
      ['n2p1', 'n1p1'],
    ];
    for (const [a, b] of pairs) {
      const from = findPod(l, a);
      const to = findPod(l, b);
      // The first echo may wait on neighbour discovery along the path: poll with a deadline.
      await waitPing(from, ip6Of(to), 15_000);
      assert.deepEqual(await pingFrom(from, ip6Of(to), { count: 2 }), { sent: 2, received: 2 }, `${a} -> ${b}`);
    }
    assert.deepEqual(await pingFrom(findPod(l, 'n1p1'), 'fd00:10:244:9::11', { timeoutMs: 300 }), { sent: 1, received: 0 }, 'an address of no node');
  });

  test('TCP over IPv6 between pods on different nodes carries data, pod address to pod address', async (t) => {
    const l = theLab(t);
    if (!l) return;
    for (const [a, b] of [
      ['n1p1', 'n2p2'],
      ['n2p1', 'n3p2'],
    ] as const) {
      const from = findPod(l, a);
      const to = findPod(l, b);
      await waitPing(from, ip6Of(to), 15_000);
      assert.deepEqual(await tcpExchange(from, to, ip6Of(to), { bytes: 200_000 }), { bytes: 200_000, peer: ip6Of(from) }, `${a} -> ${b}`);
    }
  });

  test("DNS: AAAA answers every pod's IPv6 address, A still the IPv4 ones", async (t) => {
    const l = theLab(t);
    if (!l) return;
    const pod = findPod(l, 'n3p1');
    assert.deepEqual(await resolveInPod(pod, l.spec.service, 'AAAA'), l.pods.map(ip6Of).sort());
    assert.deepEqual(await resolveInPod(pod, l.spec.service, 'A'), l.pods.map((p) => p.ip).sort());
  });

  test("baseline: IPv6 multicast reaches the same bridge node's pod, no pod on another node", async (t) => {
    const l = theLab(t);
    if (!l) return;
    const nonce = randomBytes(4).toString('hex');
    const senders = [findPod(l, 'n2p1'), findPod(l, 'n1p1')];
    const receivers = new Map<string, Mcast6Receiver>();
    try {
      for (const pod of l.pods) if (!senders.includes(pod)) receivers.set(pod.name, await startMcast6Receiver(pod));
      for (const s of senders) {
        for (const group of [DEFAULT_GROUP6, DEFAULT_LINKLOCAL_GROUP6]) await sendMcast6(s, group, `kmc6 ${nonce} ${s.name} ${group}`, { count: 3 });
      }
      const mine = (got: Datagram6[]): Datagram6[] => got.filter((d) => d.data.startsWith(`kmc6 ${nonce} `));
      // The positive control: n2p2 shares n2p1's bridge, so it hears both groups, which proves the
      // receivers work and the empty lists below are real.
      const same = receivers.get('n2p2');
      assert.ok(same);
      await same.waitUntil("n2p1's 6 datagrams on the shared bridge", (got) => mine(got).filter((d) => d.data.includes(' n2p1 ')).length >= 6, 10_000);
      await settle(300); // the observation window for copies that must not come
      const got: Record<string, string[]> = {};
      for (const [name, r] of receivers) got[name] = mine(await r.stop()).map((d) => `${d.src} -> ${d.dst}: ${d.data.split(' ').slice(2).join(' ')}`);
      const n2p1 = ip6Of(findPod(l, 'n2p1'));
      assert.deepEqual(
        got.n2p2?.filter((s) => s.includes(DEFAULT_GROUP6)),
        Array.from({ length: 3 }, () => `${n2p1} -> ${DEFAULT_GROUP6}: n2p1 ${DEFAULT_GROUP6}`),
      );
      assert.equal(got.n2p2?.filter((s) => s.endsWith(`n2p1 ${DEFAULT_LINKLOCAL_GROUP6}`)).length, 3, 'link-local group on the bridge');
      // Calico pods are routed /128s: even the same node's pod hears nothing, as with IPv4.
      for (const name of ['n1p2', 'n3p1', 'n3p2']) assert.deepEqual(got[name], [], `${name} heard ${JSON.stringify(got[name])}`);
      assert.equal(
        got.n2p2?.some((s) => s.includes('n1p1')),
        false,
      );
    } finally {
      for (const r of receivers.values()) await r.stop().catch(() => undefined);
    }
  });

  test('the router forwards no IPv6 multicast between uplinks (no mroute6 daemon)', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const nonce = randomBytes(4).toString('hex');
    const n1 = l.nodes[0];
    const n3 = l.nodes[2];
    assert.ok(n1 && n3);
    const atRouter = await startMcast6Receiver({ name: 'router', netns: l.router }, { ifname: 'kmcn1', groups: [DEFAULT_GROUP6] });
    const atNode3 = await startMcast6Receiver({ name: n3.netns, netns: n3.netns }, { ifname: 'kmcup', groups: [DEFAULT_GROUP6] });
    try {
      await sendMcast6({ name: n1.netns, netns: n1.netns }, DEFAULT_GROUP6, `kmc6 ${nonce}`, { ifname: 'kmcup', hops: 8, count: 3 });
      // Positive control: the datagrams are on node 1's uplink, at the router's door.
      await atRouter.waitUntil("node 1's datagrams on its uplink", (got) => got.filter((d) => d.data === `kmc6 ${nonce}`).length >= 3, 10_000);
      await settle(300);
      assert.deepEqual(
        (await atNode3.stop()).filter((d) => d.data.includes(nonce)),
        [],
      );
    } finally {
      await atRouter.stop().catch(() => undefined);
      await atNode3.stop().catch(() => undefined);
    }
  });

  test('addPod gives the new pod an IPv6 address, routed and in AAAA; removePod takes both away', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const pod = await addPod(l, 3, runner);
    assert.deepEqual([pod.name, pod.ip, pod.ip6], ['n3p3', '10.244.3.13', 'fd00:10:244:3::13']);
    await waitPing(findPod(l, 'n2p1'), ip6Of(pod), 15_000);
    assert.ok(((await resolveInPod(pod, l.spec.service, 'AAAA')) as string[]).includes(ip6Of(pod)));
    await removePod(l, pod, runner);
    const aaaa = (await resolveInPod(findPod(l, 'n1p1'), l.spec.service, 'AAAA')) as string[];
    assert.equal(aaaa.includes(ip6Of(pod)), false);
    assert.equal(((await resolveInPod(findPod(l, 'n1p1'), l.spec.service, 'A')) as string[]).includes(pod.ip), false);
  });

  test('cutNode cuts IPv6 too; healNode restores it', async (t) => {
    const l = theLab(t);
    if (!l) return;
    const from = findPod(l, 'n1p1');
    const to = ip6Of(findPod(l, 'n3p1'));
    await waitPing(from, to, 15_000);
    await cutNode(l, 3, runner);
    assert.deepEqual(await pingFrom(from, to, { timeoutMs: 500 }), { sent: 1, received: 0 });
    await healNode(l, 3, runner);
    await waitPing(from, to, 15_000);
    await waitPing(from, findPod(l, 'n3p1').ip, 15_000);
  });
});
