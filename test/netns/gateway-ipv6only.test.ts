/**
 * The gateway on an IPv6 underlay: an IPv6-ONLY lab (calico, bridge, calico; nodes, router, pods
 * and DNS without IPv4, the Service answering AAAA only) with an outside LAN attached to node 1
 * that is IPv6 only as well (fd00:250::/64; the switch snoops MLD and is its querier). VXLAN runs
 * over IPv6 between the nodes, so the gateway's inbound frames must fit the underlay MTU less 70:
 * the pods have 1430 (the underlay's 1500 - 70, as a CNI gives them); the LAN has 1500.
 *
 * Real peers: python3 sockets joined on eth0 by index (unprivileged in the pods) and sending with
 * IPV6_MULTICAST_IF; the project's ICMPv6 echo for ping6.
 *
 * Domain (VNI 100): n1p1 | n2p1 | n3p1      LAN: h1 (fd00:250::11), node 1's kmclan fd00:250::1
 * Gateway on node 1 (node 2 later, as a second one): ff05::1:0/112=in  ff05::2:2=out.
 * Not configured: ff05::9:9.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { IpClient } from '../../src/kernel/ip.js';
import { labUp, setServiceMembers } from '../../src/lab/lab.js';
import { attachLanNode } from '../../src/lab/lan.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { KMCAST_MAIN, pingFrom, runInNetns, startNodeAgent, waitFor } from '../../src/lab/process.js';
import { sendMcast6 } from '../../src/lab/traffic6.js';
import type { Datagram6 } from '../../src/lab/traffic6.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { privilegedReason, testLabId } from './harness.js';
import { brief, GATEWAY6_SERVICE, gateway6Lab } from './gateway6-rig.js';

const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = GATEWAY6_SERVICE;
const IN6 = 'ff05::1:3';
const OUT6 = 'ff05::2:2';
const OFF6 = 'ff05::9:9';
const PORT = 7760;
/** The pods' MTU: the underlay's 1500 less VXLAN over IPv6's 70. */
const CARRIED = 1430;
/** The longest UDP payload whose IPv6 packet (40 + 8 + payload) a VXLAN copy carries. */
const FITS = CARRIED - 48;
/** Pods send it fragmented (their MTU is 1430): each fragment fits. */
const BIG = 3000;
const GROUPS = `ff05::1:0/112=in,${OUT6}=out`;

describe('gateway on an IPv6-only cluster: IPv6 groups over VXLAN over IPv6, exactly once', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  const g = gateway6Lab({ lab: () => lab, port: PORT });
  const { runner, agents, evidence, pod, node, MEMBERS, host, gwIp6, base, nodeStatus, gatewayStatus, round, untilReplicated, switchJoins6 } = g;
  const h1 = (): Pick<LabPod, 'name' | 'netns'> => ({ name: 'h1', netns: host().netns });
  const gatewayArgs = (groups = GROUPS): string[] => [...base, '--gateway-interface', 'kmclan', '--gateway-group', groups];

  before(async () => {
    lab = await labUp(
      { id: testLabId('gw6o'), nodes: ['calico', 'bridge', 'calico'], podsPerNode: 1, mtu: 1500, podMtu: { 1: CARRIED, 2: CARRIED, 3: CARRIED }, service: SERVICE, ipv6Only: true },
      { runner },
    );
    await setServiceMembers(
      lab,
      MEMBERS().map((p) => p.ip),
    );
    await g.setUp();
  });

  after(async () => {
    if (lab) await g.tearDown();
  });

  /** A datagram of `size` bytes to `group` from `where`, tagged (`tag group label`, padded). */
  async function send(where: Pick<LabPod, 'name' | 'netns'>, group: string, tag: string, label: string, size: number, as: readonly string[] = []): Promise<void> {
    await sendMcast6(where, group, `${tag} ${group} ${label} `.padEnd(size, 'x'), { port: PORT, as });
  }

  /** `dst label:length` of each datagram, sorted: exactly once means each appears once. */
  const kinds = (ds: readonly Datagram6[]): string[] => ds.map((d) => `${d.dst} ${d.data.split(' ')[2]}:${d.data.length}`).sort();

  test('baseline: the LAN is IPv6 only, and without a gateway no multicast crosses between it and the pods', async () => {
    assert.deepEqual(await new IpClient(runner, host().netns).addrs('eth0'), [], 'the LAN host of an IPv6-only lab has no IPv4 address');
    assert.deepEqual(await new IpClient(runner, node(1).netns).addrs('kmclan'), [], "nor has node 1's LAN interface");
    assert.match(node(1).underlayIp, /:/, 'the underlay is IPv6');
    const r = await round(
      [IN6, OUT6],
      'base',
      async () => {
        await send(h1(), IN6, 'base', 'small', 200);
        await send(pod('n3p1'), OUT6, 'base', 'small', 200, UNPRIVILEGED);
        await send(pod('n1p1'), OUT6, 'base', 'small', 200, UNPRIVILEGED);
      },
      // The domain hears its own: node mode works, so the zeros below are the LAN's.
      (got) => got('n2p1').length >= 2,
    );
    for (const p of MEMBERS()) assert.deepEqual(brief(r.get(p.name)!.filter((d) => d.dst === IN6)), [], `${p.name} heard the LAN without a gateway`);
    assert.deepEqual(brief(r.get('h1')!.filter((d) => d.dst === OUT6)), [], 'h1 heard a pod without a gateway');
    assert.deepEqual(kinds(r.get('n2p1')!), [`${OUT6} small:200`, `${OUT6} small:200`], 'n2p1 hears both pods, each datagram once');
  });

  test('an IPv4 group on a node without IPv4 is refused at start, with the reason', async () => {
    await agents.get(1)!.stop();
    agents.delete(1);
    const a = await startNodeAgent(lab, node(1), gatewayArgs(`${GROUPS},239.1.1.1=in`));
    await waitFor('the agent with an IPv4 group exits', async () => a.child.exitCode !== null, 15_000, { intervalMs: 100 });
    assert.equal(a.child.exitCode, 2, 'a configuration error exits 2');
    assert.match(readFileSync(a.logFile, 'utf8'), /kmclan has no IPv4 address; the gateway joins its IPv4 groups \(239\.1\.1\.1\/32\).*IPv6 groups only/);
  });

  test('with the gateway: active on the IPv6 underlay, it joins the inbound IPv6 group members joined', async () => {
    agents.set(1, await startNodeAgent(lab, node(1), gatewayArgs()));
    await waitFor(
      'gateway on node 1 active with its table',
      async () => {
        const g = await gatewayStatus().catch(() => undefined);
        return g?.active === true && g.table.installed;
      },
      20_000,
      { intervalMs: 100, explain: evidence },
    );
    const g = await gatewayStatus();
    assert.equal(g.address, '', 'the interface has no IPv4 address');
    assert.equal(g.address6, gwIp6());
    assert.deepEqual(Object.keys(g.drops.in), ['rate', 'ttl', 'loop', 'total', 'full', 'overlong'], 'the overlong drop is counted on an IPv6 underlay');
    assert.deepEqual(await switchJoins6(), [], 'the switch sent a routable IPv6 group to node 1 before any member joined one');
  });

  test('an IPv6 source on the LAN reaches every member on every node exactly once; a frame too long for the underlay crosses nowhere, counted', async () => {
    const overlong = async (): Promise<number> => (await gatewayStatus()).drops.in.overlong ?? 0;
    const before = await overlong();
    const r = await round(
      [IN6],
      'in',
      async () => {
        await waitFor(`the LAN switch sends ${IN6} to node 1`, async () => (await switchJoins6()).includes(IN6), 15_000, { intervalMs: 100, explain: evidence });
        await untilReplicated(1, IN6, [2, 3]);
        await send(h1(), IN6, 'in', 'small', 200);
        // The longest that fits (its IPv6 packet is 1430 bytes), and one byte more.
        await send(h1(), IN6, 'in', 'fits', FITS);
        await send(h1(), IN6, 'in', 'over', FITS + 1);
      },
      (got) => MEMBERS().every((p) => got(p.name).length >= 2),
    );
    for (const p of MEMBERS()) {
      const mine = r.get(p.name)!;
      assert.deepEqual(kinds(mine), [`${IN6} fits:${FITS}`, `${IN6} small:200`], `${p.name}: ${JSON.stringify(brief(mine))}`);
      for (const d of mine) assert.equal(d.src, host().ip6, `${p.name}: ${IN6} keeps the LAN source`);
    }
    assert.equal((await overlong()) - before, 1, 'the frame one byte too long was not counted as overlong');
    const t = (await gatewayStatus()).traffic.find((x) => x.group === IN6 && x.direction === 'in');
    assert.equal(t?.datagrams, 2, `the gateway's count of ${IN6} inbound: ${JSON.stringify(t)}`);
  });

  test("a pod's IPv6 stream reaches the LAN once, from the gateway's IPv6 address; the domain still gets it", async () => {
    await untilReplicated(3, OUT6, [1]);
    await untilReplicated(2, OUT6, [1]);
    const r = await round(
      [OUT6],
      'out',
      async () => {
        for (const p of ['n3p1', 'n1p1']) {
          await send(pod(p), OUT6, 'out', `small-${p}`, 200, UNPRIVILEGED);
          await send(pod(p), OUT6, 'out', `big-${p}`, BIG, UNPRIVILEGED);
        }
      },
      (got) => got('h1').length >= 4,
    );
    const want = ['n1p1', 'n3p1'].flatMap((p) => [`${OUT6} big-${p}:${BIG}`, `${OUT6} small-${p}:200`]).sort();
    assert.deepEqual(kinds(r.get('h1')!), want, `h1: ${JSON.stringify(brief(r.get('h1')!))}`);
    for (const d of r.get('h1')!) assert.equal(d.src, gwIp6(), `h1 hears ${OUT6} from the gateway's IPv6 address: ${JSON.stringify(brief([d]))}`);
    assert.deepEqual(kinds(r.get('n2p1')!), want, 'the domain lost its own stream');
  });

  test('an unlisted IPv6 group crosses in neither direction, nor does a group in its other direction', async () => {
    const r = await round(
      [OFF6, IN6, OUT6],
      'off',
      async () => {
        await untilReplicated(3, IN6, [1, 2]);
        await send(h1(), OFF6, 'off', 'small', 200);
        await send(h1(), OUT6, 'off', 'small', 200);
        await send(pod('n3p1'), OFF6, 'off', 'small', 200, UNPRIVILEGED);
        await send(pod('n3p1'), IN6, 'off', 'small', 200, UNPRIVILEGED);
      },
      (got) => got('n1p1').length >= 2 && got('h1').length >= 2,
    );
    for (const p of MEMBERS()) assert.deepEqual(brief(r.get(p.name)!.filter((d) => d.src === host().ip6)), [], `${p.name} heard the LAN`);
    assert.deepEqual(kinds(r.get('n1p1')!), [`${IN6} small:200`, `${OFF6} small:200`], 'the domain carries its own groups, each once');
    assert.deepEqual(brief(r.get('h1')!.filter((d) => d.src !== host().ip6)), [], 'h1 heard a pod');
  });

  test("ping6 between the LAN host and the gateway's interface works while the gateway runs (ND is never taken)", async () => {
    for (const [ns, dev] of [
      [host().netns, 'eth0'],
      [node(1).netns, 'kmclan'],
    ] as const) {
      await runInNetns(ns, ['ip', '-6', 'neigh', 'flush', 'dev', dev]);
    }
    assert.deepEqual(await pingFrom(h1(), gwIp6(), { count: 3 }), { sent: 3, received: 3 }, `h1 -> ${gwIp6()}`);
    assert.deepEqual(await pingFrom({ name: 'n1', netns: node(1).netns }, host().ip6!, { count: 3 }), { sent: 3, received: 3 }, `node 1 -> ${host().ip6}`);
    const neigh = (await runInNetns(host().netns, ['ip', '-6', 'neigh', 'show', gwIp6(), 'dev', 'eth0'])).stdout;
    assert.match(neigh, /lladdr/, `h1 resolved the gateway's address by Neighbor Discovery: ${neigh}`);
    assert.equal((await gatewayStatus()).active, true, 'the gateway was not running');
  });

  test('status and doctor name the IPv6 address alone and the overlong frame', async () => {
    const st = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'status', '--node'], 10_000);
    assert.equal(st.code, 0, st.stderr);
    assert.ok(st.stdout.includes(`interface kmclan ${gwIp6()}  snat: on`), st.stdout);
    assert.match(st.stdout, /dropped: in rate 0 ttl 0 loop 0 total 0 full 0 overlong 1 /);
    const doc = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'doctor', '--node', '--json'], 20_000);
    const checks = JSON.parse(doc.stdout) as { checks: Array<{ id: string; title: string; status: string; detail: string }> };
    const gw = checks.checks.find((c) => c.id === 'node-gateway');
    assert.ok(gw, doc.stdout);
    assert.equal(gw.title, `gateway on kmclan (${gwIp6()})`);
    assert.equal(gw.status, 'WARN', gw.detail);
    assert.match(gw.detail, /1 inbound datagram frame\(s\) longer than the IPv6 underlay carries/);
  });

  test('two gateways elect by their IPv6 node address and guard each other by their IPv6 LAN address', async () => {
    const second = await attachLanNode(lab, runner, 2);
    await agents.get(2)!.stop();
    agents.set(2, await startNodeAgent(lab, node(2), gatewayArgs()));
    await waitFor(
      'gateway on node 2 standby, node 1 active',
      async () => {
        const g = (await nodeStatus(2).catch(() => undefined))?.gateway;
        return g?.active === false && g.role === 'lower-ip-alive' && g.activeGateway === node(1).underlayIp && g.table.installed;
      },
      20_000,
      { intervalMs: 100, explain: evidence },
    );
    await waitFor(
      "node 1 lists node 2's gateway with its IPv6 LAN address",
      async () => (await gatewayStatus()).gateways.some((x) => x.ip === node(2).underlayIp && x.address === second.ip6),
      10_000,
      { intervalMs: 100, explain: evidence },
    );
    // /status shows the table as learned; the set is written by the next pass, so wait for it.
    const listSet = async (): Promise<string> => (await runInNetns(node(1).netns, ['nft', 'list', 'set', 'netdev', 'kmcast-gw', 'gw-addrs6'])).stdout;
    const wanted = new RegExp(`elements = \\{[^}]*\\b${second.ip6!}\\b`);
    await waitFor("node 1's loop guard gw-addrs6 holds node 2's IPv6 LAN address", async () => wanted.test(await listSet()), 10_000, {
      intervalMs: 100,
      explain: async () => `${await listSet()}\n${await evidence()}`,
    });
    assert.equal((await gatewayStatus()).active, true);
  });
});
