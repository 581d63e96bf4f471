/**
 * The gateway carries IPv6 groups, on a dual-stack lab (calico, bridge, calico; the underlay stays
 * IPv4) with an outside LAN attached to node 1: a switch snooping MLD and acting as its querier,
 * so node 1's port gets a routable IPv6 group only after the gateway's MLD report. Real peers:
 * python3 sockets joined on eth0 by index (unprivileged in the pods) and sending with
 * IPV6_MULTICAST_IF, one small and one 3000-byte (fragmented) datagram per round; the project's
 * ICMPv6 echo for ping6.
 *
 * Domain (VNI 100): n1p1 | n2p1 | n3p1      LAN: h1 (fd00:250::11), node 1's kmclan fd00:250::1
 * Gateway on node 1 (later node 2 as the second one): ff05::1:0/112=in  ff02::fb=in  ff05::2:2=out
 *   ff05::3:3=both  239.2.2.2=out,
 * 1000 datagrams/s per group. Not configured: ff05::9:9.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { labUp, setServiceMembers } from '../../src/lab/lab.js';
import { attachLanNode } from '../../src/lab/lan.js';
import { received, sendFromPod, startNodeReceiver, UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { KMCAST_MAIN, netnsFetch, pingFrom, runInNetns, settle, startNodeAgent, waitFor } from '../../src/lab/process.js';
import { sendMcast6, startMcast6Receiver } from '../../src/lab/traffic6.js';
import type { Datagram6 } from '../../src/lab/traffic6.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import { privilegedReason, testLabId } from './harness.js';
import { brief, GATEWAY6_SERVICE, gateway6Lab } from './gateway6-rig.js';

const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = GATEWAY6_SERVICE;
const IN6 = 'ff05::1:3';
const LL6 = 'ff02::fb';
const OUT6 = 'ff05::2:2';
const OFF6 = 'ff05::9:9';
const OUT4 = '239.2.2.2';
const BOTH6 = 'ff05::3:3';
const BURST6 = 'ff05::1:99';
const RATE = 1000;
const PORT = 7740;
/** Over every MTU on the way (1500): fragmented by the sender, and again on the underlay. */
const BIG = 3000;
const GROUPS = `ff05::1:0/112=in,${LL6}=in,${OUT6}=out,${BOTH6}=both,${OUT4}=out`;

describe('gateway: IPv6 groups between a dual-stack domain and an outside LAN, exactly once', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  const g = gateway6Lab({ lab: () => lab, port: PORT });
  const { runner, agents, evidence, pod, node, MEMBERS, host, gwIp6, base, nodeStatus, gatewayStatus, round, untilReplicated, switchJoins6 } = g;
  const gatewayArgs = [...base, '--gateway-interface', 'kmclan', '--gateway-group', GROUPS, '--gateway-rate', String(RATE)];

  before(async () => {
    lab = await labUp({ id: testLabId('g6'), nodes: ['calico', 'bridge', 'calico'], podsPerNode: 1, mtu: 1500, service: SERVICE, ipv6: true }, { runner });
    // A dual-stack headless Service: A and AAAA records.
    await setServiceMembers(
      lab,
      MEMBERS().flatMap((p) => [p.ip, p.ip6!]),
    );
    await g.setUp();
  });

  after(async () => {
    if (lab) await g.tearDown();
  });

  /** One small and one fragmented datagram to `group` from `where`, tagged. */
  async function sendPair(where: Pick<LabPod, 'name' | 'netns'>, group: string, tag: string, as: readonly string[] = []): Promise<void> {
    await sendMcast6(where, group, `${tag} ${group} small`, { port: PORT, as });
    await sendMcast6(where, group, `${tag} ${group} big `.padEnd(BIG, 'x'), { port: PORT, as });
  }

  /** `dst kind` of each datagram, sorted: exactly once means each pair appears once. */
  const kinds = (ds: readonly Datagram6[]): string[] => ds.map((d) => `${d.dst} ${d.data.includes(' big ') ? `big:${d.data.length}` : 'small'}`).sort();
  const pair = (g: string): string[] => [`${g} big:${BIG}`, `${g} small`];

  test('baseline: with node agents but no gateway, no IPv6 multicast crosses between the LAN and the pods', async () => {
    const r = await round(
      [IN6, LL6, OUT6],
      'base',
      async () => {
        await sendPair({ name: 'h1', netns: host().netns }, IN6, 'base');
        await sendPair({ name: 'h1', netns: host().netns }, LL6, 'base');
        await sendPair(pod('n3p1'), OUT6, 'base', UNPRIVILEGED);
        await sendPair(pod('n1p1'), OUT6, 'base', UNPRIVILEGED);
      },
      // The domain hears its own: node mode works, so the zeros below are the LAN's.
      (got) => got('n2p1').length >= 4,
    );
    for (const p of MEMBERS()) assert.deepEqual(brief(r.get(p.name)!.filter((d) => d.dst !== OUT6)), [], `${p.name} heard the LAN without a gateway`);
    assert.deepEqual(brief(r.get('h1')!.filter((d) => d.dst === OUT6)), [], 'h1 heard a pod without a gateway');
    assert.deepEqual(kinds(r.get('n2p1')!), [...pair(OUT6), ...pair(OUT6)].sort(), 'n2p1 hears both pods, each datagram once');
  });

  test('with the gateway: it joins the inbound IPv6 groups members joined by MLD, and ff02::fb always', async () => {
    await agents.get(1)!.stop();
    agents.set(1, await startNodeAgent(lab, node(1), gatewayArgs));
    await waitFor(
      'gateway on node 1 active with its table, joined on ff02::fb',
      async () => {
        const g = await gatewayStatus().catch(() => undefined);
        return g?.active === true && g.table.installed && g.joined.includes(LL6);
      },
      20_000,
      { intervalMs: 100, explain: evidence },
    );
    const g = await gatewayStatus();
    assert.equal(g.address6, gwIp6());
    assert.deepEqual(
      g.groups.map((x) => `${x.prefix}=${x.direction}`),
      ['ff05::1:0/112=in', 'ff02::fb/128=in', 'ff05::2:2/128=out', 'ff05::3:3/128=both', '239.2.2.2/32=out'],
    );
    assert.deepEqual(await switchJoins6(), [], 'the switch sent a routable IPv6 group to node 1 before any member joined one');
    const rx = await startMcast6Receiver(pod('n3p1'), { groups: [IN6], port: PORT, as: UNPRIVILEGED });
    try {
      await waitFor(`the LAN switch sends ${IN6} to node 1 (MLD report seen)`, async () => (await switchJoins6()).includes(IN6), 15_000, { intervalMs: 100, explain: evidence });
      assert.deepEqual((await gatewayStatus()).joined, [LL6, IN6]);
    } finally {
      await rx.stop();
    }
    await waitFor('the gateway leaves the group when the last member does', async () => !(await gatewayStatus()).joined.includes(IN6), 15_000, { intervalMs: 100, explain: evidence });
  });

  test('an IPv6 source on the LAN reaches every member on every node exactly once, fragmented datagrams whole', async () => {
    const r = await round(
      [IN6, LL6],
      'in',
      async () => {
        await waitFor(`the LAN switch sends ${IN6} to node 1`, async () => (await switchJoins6()).includes(IN6), 15_000, { intervalMs: 100, explain: evidence });
        await untilReplicated(1, IN6, [2, 3]);
        await sendPair({ name: 'h1', netns: host().netns }, IN6, 'in');
        await sendPair({ name: 'h1', netns: host().netns }, LL6, 'in');
      },
      (got) => MEMBERS().every((p) => got(p.name).length >= 4),
    );
    for (const p of MEMBERS()) {
      const mine = r.get(p.name)!;
      assert.deepEqual(kinds(mine), [...pair(IN6), ...pair(LL6)].sort(), `${p.name}: ${JSON.stringify(brief(mine))}`);
      for (const d of mine.filter((x) => x.dst === IN6)) assert.equal(d.src, host().ip6, `${p.name}: ${IN6} keeps the LAN source`);
      for (const d of mine.filter((x) => x.dst === LL6)) assert.match(d.src, /^fe80:/, `${p.name}: ${LL6} from h1's link-local address`);
    }
    const t = (await gatewayStatus()).traffic.find((x) => x.group === IN6 && x.direction === 'in');
    // Counted per frame: the small datagram and the big one's three fragments.
    assert.equal(t?.datagrams, 4, `the gateway's count of ${IN6} inbound: ${JSON.stringify(t)}`);
  });

  test("a pod's IPv6 stream reaches the LAN once, from the gateway's IPv6 address (SNAT); the domain still gets it", async () => {
    await untilReplicated(3, OUT6, [1]);
    await untilReplicated(2, OUT6, [1]);
    const r = await round(
      [OUT6],
      'out',
      async () => {
        await sendPair(pod('n3p1'), OUT6, 'out-n3p1', UNPRIVILEGED);
        await sendPair(pod('n1p1'), OUT6, 'out-n1p1', UNPRIVILEGED);
      },
      (got) => got('h1').length >= 4,
    );
    const h1 = r.get('h1')!;
    assert.deepEqual(kinds(h1), [...pair(OUT6), ...pair(OUT6)].sort(), `h1: ${JSON.stringify(brief(h1))}`);
    for (const d of h1) assert.equal(d.src, gwIp6(), `h1 hears ${OUT6} from the gateway's IPv6 address: ${JSON.stringify(brief([d]))}`);
    assert.deepEqual(kinds(r.get('n2p1')!), [...pair(OUT6), ...pair(OUT6)].sort(), 'the domain lost its own stream');
    for (const d of r.get('n2p1')!) assert.ok([pod('n3p1').ip6, pod('n1p1').ip6].includes(d.src), `n2p1 got ${d.src}: the domain sees pod sources`);
    // IPv4 beside IPv6 in one table: a pod's IPv4 stream still leaves with the IPv4 address.
    await untilReplicated(3, OUT4, [1]);
    const rx4 = await startNodeReceiver(host().netns, { port: PORT, groups: [OUT4], maxSeconds: 30 });
    await sendFromPod(pod('n3p1').netns, OUT4, { port: PORT, count: 20, intervalMs: 5 });
    await settle(600);
    const got4 = await rx4.stop();
    assert.equal(received(got4, OUT4, g.lan().nodes[0]!.ip), 20, `h1 IPv4 ${OUT4}: ${JSON.stringify(got4.counts)}`);
  });

  test('an unlisted IPv6 group crosses in neither direction, nor does a group in its other direction', async () => {
    const r = await round(
      [OFF6, IN6, OUT6],
      'off',
      async () => {
        await untilReplicated(3, IN6, [1, 2]);
        await sendPair({ name: 'h1', netns: host().netns }, OFF6, 'off');
        await sendPair({ name: 'h1', netns: host().netns }, OUT6, 'off');
        await sendPair(pod('n3p1'), OFF6, 'off', UNPRIVILEGED);
        await sendPair(pod('n3p1'), IN6, 'off', UNPRIVILEGED);
      },
      (got) => got('n1p1').length >= 4 && got('h1').length >= 4,
    );
    for (const p of MEMBERS()) assert.deepEqual(brief(r.get(p.name)!.filter((d) => d.src === host().ip6)), [], `${p.name} heard the LAN`);
    assert.deepEqual(kinds(r.get('n1p1')!), [...pair(OFF6), ...pair(IN6)].sort(), 'the domain carries its own groups, each once');
    assert.deepEqual(brief(r.get('h1')!.filter((d) => d.src !== host().ip6)), [], 'h1 heard a pod');
  });

  test('no loop when the LAN hears the IPv6 copies back (hairpin on the gateway port): dropped by the MAC, counted', async () => {
    await runInNetns(g.lan().netns, ['bridge', 'link', 'set', 'dev', g.lan().nodes[0]!.port, 'hairpin', 'on']);
    try {
      const loop = async (): Promise<number> => (await gatewayStatus()).traffic.find((x) => x.group === BOTH6 && x.direction === 'in')?.dropped.loop ?? 0;
      const before = await loop();
      const r = await round(
        [BOTH6],
        'hair',
        async () => {
          await waitFor(`the LAN switch sends ${BOTH6} to node 1`, async () => (await switchJoins6()).includes(BOTH6), 15_000, { intervalMs: 100, explain: evidence });
          await untilReplicated(3, BOTH6, [1, 2]);
          await sendPair(pod('n3p1'), BOTH6, 'hair', UNPRIVILEGED);
        },
        (got) => got('h1').length >= 2 && got('n1p1').length >= 2,
      );
      assert.deepEqual(kinds(r.get('h1')!), pair(BOTH6), `h1: ${JSON.stringify(brief(r.get('h1')!))}`);
      for (const p of ['n1p1', 'n2p1']) {
        assert.deepEqual(kinds(r.get(p)!), pair(BOTH6), `${p} got the echo back in: ${JSON.stringify(brief(r.get(p)!))}`);
        for (const d of r.get(p)!) assert.equal(d.src, pod('n3p1').ip6);
      }
      // The small datagram and the big one's three fragments, each heard back once.
      assert.equal((await loop()) - before, 4, 'the gateway did not see (and drop) its own IPv6 copies coming back');
    } finally {
      await runInNetns(g.lan().netns, ['bridge', 'link', 'set', 'dev', g.lan().nodes[0]!.port, 'hairpin', 'off']);
    }
  });

  test('an IPv6 burst over --gateway-rate is cut to the rate, every drop counted per group', async () => {
    const row = async (): Promise<{ datagrams: number; rate: number }> => {
      const t = (await gatewayStatus()).traffic.find((x) => x.group === BURST6 && x.direction === 'in');
      return { datagrams: t?.datagrams ?? 0, rate: t?.dropped.rate ?? 0 };
    };
    const before = await row();
    const rx = await startMcast6Receiver(pod('n2p1'), { groups: [BURST6], port: PORT, as: UNPRIVILEGED });
    let got = 0;
    try {
      await waitFor(`the LAN switch sends ${BURST6} to node 1`, async () => (await switchJoins6()).includes(BURST6), 15_000, { intervalMs: 100, explain: evidence });
      await untilReplicated(1, BURST6, [2]);
      // 3000 datagrams as fast as python sends them: far above 1000/s with a burst of 100.
      await sendMcast6({ name: 'h1', netns: host().netns }, BURST6, 'burst', { port: PORT, count: 3000 });
      await settle(800);
    } finally {
      got = (await rx.stop()).filter((d) => d.src === host().ip6).length;
    }
    const after = await row();
    const passed = after.datagrams - before.datagrams;
    const dropped = after.rate - before.rate;
    assert.ok(got > 0 && got < 3000, `n2p1 received ${got} of 3000`);
    assert.equal(got, passed, 'the pod received a different number than the gateway let through');
    assert.equal(passed + dropped, 3000, `passed ${passed} + dropped ${dropped} != 3000`);
  });

  test("ping6 between the LAN host and the gateway's interface works while the gateway runs (ND is never taken)", async () => {
    for (const [ns, dev] of [
      [host().netns, 'eth0'],
      [node(1).netns, 'kmclan'],
    ] as const) {
      await runInNetns(ns, ['ip', '-6', 'neigh', 'flush', 'dev', dev]);
    }
    const h1 = { name: 'h1', netns: host().netns };
    const n1 = { name: 'n1', netns: node(1).netns };
    assert.deepEqual(await pingFrom(h1, gwIp6(), { count: 3 }), { sent: 3, received: 3 }, `h1 -> ${gwIp6()}`);
    assert.deepEqual(await pingFrom(n1, host().ip6!, { count: 3 }), { sent: 3, received: 3 }, `node 1 -> ${host().ip6}`);
    const neigh = (await runInNetns(host().netns, ['ip', '-6', 'neigh', 'show', gwIp6(), 'dev', 'eth0'])).stdout;
    assert.match(neigh, /lladdr/, `h1 resolved the gateway's address by Neighbor Discovery: ${neigh}`);
    assert.equal((await gatewayStatus()).active, true, 'the gateway was not running');
  });

  test('status, metrics and doctor show the IPv6 groups and the IPv6 address', async () => {
    const st = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'status', '--node'], 10_000);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`interface kmclan 192\\.168\\.250\\.1 ${gwIp6().replace(/:/g, ':')}`));
    assert.match(st.stdout, /ff05::1:3 +in +4 /);
    assert.match(st.stdout, /ff05::2:2 +out +8 /);
    const metrics = (await netnsFetch(node(1).netns, '/metrics', NODE_HTTP_PORT)).body;
    assert.match(metrics, /kmcast_gateway_datagrams_total\{domain="[^"]+",group="ff05::2:2",direction="out"\} 8/);
    const doc = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'doctor', '--node', '--json'], 20_000);
    const checks = JSON.parse(doc.stdout) as { checks: Array<{ id: string; title: string; detail: string }> };
    const gw = checks.checks.find((c) => c.id === 'node-gateway');
    assert.ok(gw, doc.stdout);
    assert.ok(gw.title.includes(gwIp6()), gw.title);
    assert.match(gw.detail, /^active; joined ff02::fb/);
  });

  test('two gateways: one carries the IPv6 groups, no duplicate either way; the standby takes over on SIGTERM', async () => {
    const second = await attachLanNode(lab, runner, 2);
    await agents.get(2)!.stop();
    agents.set(2, await startNodeAgent(lab, node(2), gatewayArgs));
    await waitFor(
      'gateway on node 2 standby, node 1 active',
      async () => {
        const g = (await nodeStatus(2).catch(() => undefined))?.gateway;
        return g?.active === false && g.role === 'lower-ip-alive' && g.table.installed;
      },
      20_000,
      { intervalMs: 100, explain: evidence },
    );
    assert.deepEqual((await nodeStatus(2)).gateway?.joined, [], 'a standby gateway joins nothing');
    const exactlyOnce = async (label: string, gw: number, receivers: readonly LabPod[]): Promise<void> => {
      const from = gw === 2 ? second : g.lan().nodes[0]!;
      const tag = `ha-${label.replace(/\W+/g, '-')}`;
      const r = await round(
        [IN6, OUT6],
        tag,
        async () => {
          await waitFor(`${label}: the switch sends ${IN6} to the active gateway`, async () => (await switchJoins6(from.port)).includes(IN6), 15_000, {
            intervalMs: 100,
            explain: evidence,
          });
          await untilReplicated(
            gw,
            IN6,
            [...new Set(receivers.map((p) => p.node))].filter((i) => i !== gw),
          );
          await untilReplicated(3, OUT6, [gw]);
          await sendPair({ name: 'h1', netns: host().netns }, IN6, tag);
          await sendPair(pod('n3p1'), OUT6, tag, UNPRIVILEGED);
        },
        (got) => receivers.every((p) => got(p.name).filter((d) => d.dst === IN6).length >= 2) && got('h1').filter((d) => d.dst === OUT6).length >= 2,
      );
      for (const p of receivers) assert.deepEqual(kinds(r.get(p.name)!.filter((d) => d.dst === IN6)), pair(IN6), `${label}: ${p.name} ${JSON.stringify(brief(r.get(p.name)!))}`);
      const h1 = r.get('h1')!.filter((d) => d.dst === OUT6);
      assert.deepEqual(kinds(h1), pair(OUT6), `${label}: h1 ${JSON.stringify(brief(h1))}`);
      for (const d of h1) assert.equal(d.src, from.ip6, `${label}: h1 hears the active gateway`);
    };
    await exactlyOnce('both up', 1, MEMBERS());
    await agents.get(1)!.stop();
    agents.delete(1);
    await waitFor('gateway on node 2 active', async () => (await nodeStatus(2)).gateway?.active === true, 20_000, { intervalMs: 100, explain: evidence });
    await exactlyOnce(
      'node 1 stopped',
      2,
      MEMBERS().filter((p) => p.node !== 1),
    );
  });
});
