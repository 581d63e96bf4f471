/**
 * Node mode (`kmcast node`), end to end on a 4-node lab (calico, bridge, calico, bridge): the
 * agents run in the NODE namespaces, the pods hold no agent, and every app is python3 with no
 * capability and uid 65534, joined on eth0 by interface index, sending with IP_MULTICAST_IF set
 * to eth0's index (some bound with SO_BINDTODEVICE eth0). keepalived runs as its docs configure it.
 *
 * Domain A (VNI 100): n1p1 n1p2 | n2p1 n2p2 n2p3 | n3p1 n3p2 n3p3 | n4p1 n4p2 n4p3
 * Domain B (VNI 200): n1p3 | n4p4          No domain: n1p4 (calico), n2p4 (bridge)
 * Strict rp_filter: n2p2 (bridge), n3p2 (calico).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { addPod, cutNode, healNode, labDown, labUp, removePod, setDnsRecord, setServiceMembers } from '../../src/lab/lab.js';
import { received, receivedAny, sendFromPod, startNodeReceiver } from '../../src/lab/node-apps.js';
import type { NodeReceiver, NodeReceiverReport, ReceiverMode } from '../../src/lab/node-apps.js';
import { agentsEvidence, netnsFetch, netnsFetchAll, runInNetns, settle, spawnInNetns, startNodeAgent, waitFor } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT, podStatusPath } from '../../src/node/api.js';
import type { PodProgramStatus } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE_A = 'kmcast-peers.default.svc.cluster.local';
const SERVICE_B = 'app-b.default.svc.cluster.local';
const G = '239.1.1.1';
const LL = '224.0.0.251';
const BC = '255.255.255.255';
const PORT = 7600;
const N = 20;
const DEV_A = 'kmcvx100';
const VIP = '192.0.2.200';

describe('node mode: unprivileged pods, capture at the host veth, one VXLAN copy per node', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let keyDir: string;
  let agentArgs: string[];
  const agents = new Map<number, NodeAgentHandle>();
  /** What the agents show, quoted when a wait times out. */
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => lab.nodes.find((n) => n.index === i)!;
  const A = (): LabPod[] => ['n1p1', 'n1p2', 'n2p1', 'n2p2', 'n2p3', 'n3p1', 'n3p2', 'n3p3', 'n4p1', 'n4p2', 'n4p3'].map(pod);
  const B = (): LabPod[] => ['n1p3', 'n4p4'].map(pod);
  const NONE = (): LabPod[] => ['n1p4', 'n2p4'].map(pod);
  const BIND = new Set(['n2p3', 'n3p1']);

  before(async () => {
    lab = await labUp({ id: testLabId('nd'), nodes: ['calico', 'bridge', 'calico', 'bridge'], podsPerNode: 3, mtu: 1500, service: SERVICE_A }, { runner });
    await addPod(lab, 1, runner);
    await addPod(lab, 2, runner);
    await addPod(lab, 4, runner);
    await setServiceMembers(
      lab,
      A().map((p) => p.ip),
    );
    await setDnsRecord(
      lab,
      SERVICE_B,
      B().map((p) => p.ip),
    );
    // The node receivers join on every interface (two groups each): more than the default 20.
    for (const n of lab.nodes) await runner.run(['sysctl', '-q', '-w', 'net.ipv4.igmp_max_memberships=200'], { netns: n.netns });
    for (const p of [pod('n2p2'), pod('n3p2')]) {
      await runner.run(['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.eth0.rp_filter=1'], { netns: p.netns });
    }
    keyDir = mkdtempSync(join(tmpdir(), 'kmcast-node-key-'));
    writeFileSync(join(keyDir, 'key'), `hex:${randomBytes(32).toString('hex')}\n`);
    agentArgs = ['--service', `${SERVICE_A}=100`, '--service', `${SERVICE_B}=200`, '--key-file', join(keyDir, 'key'), '--heartbeat-interval', '1000', '--resolve-interval', '1000'];
  });

  after(async () => {
    if (keepLab()) return;
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  async function startAgent(i: number): Promise<void> {
    agents.set(i, await startNodeAgent(lab, node(i), agentArgs));
  }

  async function nodeStatus(i: number): Promise<NodeStatus> {
    return JSON.parse((await netnsFetch(node(i).netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
  }

  async function podProgram(p: LabPod): Promise<{ status: number; body?: PodProgramStatus }> {
    const r = await netnsFetch(node(p.node).netns, podStatusPath(p.ip), NODE_HTTP_PORT);
    return r.status === 200 ? { status: 200, body: JSON.parse(r.body) as PodProgramStatus } : { status: r.status };
  }

  /** Nodes the sender's node replicates `group` to (MDB destinations on the domain device). */
  async function mdbDsts(i: number, dev: string, group: string): Promise<string[]> {
    return (await new IpClient(runner, node(i).netns).bridge.mdb(dev))
      .filter((e) => e.grp === group)
      .map((e) => e.dst!)
      .sort();
  }

  function otherMemberNodes(sender: LabPod): string[] {
    return [
      ...new Set(
        A()
          .filter((p) => p.node !== sender.node)
          .map((p) => node(p.node).underlayIp),
      ),
    ].sort();
  }

  interface Round {
    readonly reports: Map<string, NodeReceiverReport>;
    /** Datagrams of each kind the sender sent. */
    readonly sent: number;
  }

  interface OpenRound {
    send(): Promise<void>;
    finish(): Promise<Round>;
  }

  /** Receivers everywhere (pods and two node namespaces); each send() sends every kind N times. */
  async function openRound(sender: LabPod, opts: { waitJoins: boolean }): Promise<OpenRound> {
    if (opts.waitJoins) {
      // The previous round's leaves must be through first, or an entry about to be withdrawn
      // would pass for one of this round's joins.
      await waitFor(
        `no node replicates ${G} any more`,
        async () => {
          for (const n of lab.nodes) if ((await mdbDsts(n.index, DEV_A, G)).length) return false;
          return true;
        },
        15_000,
        { intervalMs: 100, explain: evidence },
      );
    }
    const targets: Array<{ name: string; netns: string; mode: ReceiverMode }> = [
      ...[...A(), ...B(), ...NONE()].filter((p) => p !== sender).map((p) => ({ name: p.name, netns: p.netns, mode: (BIND.has(p.name) ? 'bind' : 'index') as ReceiverMode })),
      { name: 'node1', netns: node(1).netns, mode: 'all' },
      { name: 'node2', netns: node(2).netns, mode: 'all' },
    ];
    const receivers = new Map<string, NodeReceiver>();
    await Promise.all(targets.map(async (t) => receivers.set(t.name, await startNodeReceiver(t.netns, { port: PORT, groups: [G, LL], mode: t.mode }))));
    if (opts.waitJoins) {
      const want = otherMemberNodes(sender).join();
      await waitFor(`node ${sender.node} replicates ${G} to every other member node`, async () => (await mdbDsts(sender.node, DEV_A, G)).join() === want, 10_000, {
        intervalMs: 50,
        explain: evidence,
      });
    }
    let sent = 0;
    return {
      async send(): Promise<void> {
        for (const dst of [G, LL, BC]) await sendFromPod(sender.netns, dst, { port: PORT, count: N, intervalMs: 5 });
        sent += N;
        // With kmcast, every other member of A must count all three kinds: wait for that, then
        // leave a short window in which a duplicate or a stray copy elsewhere would show.
        if (opts.waitJoins)
          await Promise.all(
            A()
              .filter((p) => p !== sender)
              .map((p) =>
                receivers
                  .get(p.name)!
                  .waitTotal(3 * sent, 5000)
                  .catch(() => undefined),
              ),
          ); // the assertions below say what is missing
        await settle(300);
      },
      async finish(): Promise<Round> {
        const reports = new Map<string, NodeReceiverReport>();
        await Promise.all([...receivers].map(async ([name, r]) => reports.set(name, await r.stop())));
        return { reports, sent };
      },
    };
  }

  async function round(sender: LabPod, opts: { waitJoins: boolean }): Promise<Round> {
    const r = await openRound(sender, opts);
    await r.send();
    return await r.finish();
  }

  function assertDelivered(sender: LabPod, r: Round): void {
    for (const p of A().filter((q) => q !== sender)) {
      const rep = r.reports.get(p.name)!;
      for (const dst of [G, LL, BC]) {
        assert.equal(
          received(rep, dst, sender.ip),
          r.sent,
          `${p.name} (${p.style}${BIND.has(p.name) ? ', SO_BINDTODEVICE' : ''}) got ${dst} from ${sender.name} exactly ${r.sent} times: ${JSON.stringify(rep.counts)}`,
        );
        assert.equal(receivedAny(rep, dst), r.sent, `${p.name}: ${dst} only from the sender's pod IP: ${JSON.stringify(rep.counts[dst])}`);
      }
      // Nothing routed it: the TTL is the sender's (1 for multicast by default, 64 for broadcast).
      assert.deepEqual(rep.ttls[G], [1], `${p.name}: TTL of ${G} untouched`);
      assert.deepEqual(rep.ttls[BC], [64], `${p.name}: TTL of broadcast untouched`);
    }
    for (const name of [...B(), ...NONE()]
      .map((p) => p.name)
      .concat(['node1', 'node2'])
      .filter((n) => n !== sender.name)) {
      const rep = r.reports.get(name)!;
      for (const dst of [G, LL, BC]) assert.equal(receivedAny(rep, dst), 0, `${name} is no member of A and must hear nothing: ${JSON.stringify(rep.counts)}`);
    }
  }

  test('baseline without kmcast: nothing crosses nodes, and the node stack would hear the pods', async (t) => {
    if (!needRoot(t)) return;
    const sender = pod('n1p1');
    const r = await round(sender, { waitJoins: false });
    for (const p of A().filter((q) => q.node !== sender.node)) {
      for (const dst of [G, LL, BC]) assert.equal(receivedAny(r.reports.get(p.name)!, dst), 0, `${dst} reached ${p.name} on another node without kmcast: the lab cheats`);
    }
    const n1 = r.reports.get('node1')!;
    assert.ok(receivedAny(n1, BC) + receivedAny(n1, G) > 0, `the node-1 listener must hear the pod's traffic without kmcast (else its silence later proves nothing): ${JSON.stringify(n1.counts)}`);
  });

  test('keepalived baseline: two instances on different nodes both become MASTER (split brain)', async (t) => {
    if (!needRoot(t)) return;
    const ka = await keepalivedPair();
    try {
      await waitFor('both keepalived instances hold the VIP', async () => (await vipHolders()).length === 2, 20_000, { intervalMs: 250, explain: evidence });
    } finally {
      await ka.stop();
    }
    await waitFor('VIPs released', async () => (await vipHolders()).length === 0, 10_000, { intervalMs: 100, explain: evidence });
  });

  test('node agents start in the node namespaces and program every local member', async (t) => {
    if (!needRoot(t)) return;
    for (const i of [1, 2, 3, 4]) await startAgent(i);
    await waitFor(
      'every member programmed',
      async () => {
        for (const n of lab.nodes) {
          const local = [...A(), ...B()].filter((p) => p.node === n.index);
          const answers = await netnsFetchAll(
            n.netns,
            local.map((p) => podStatusPath(p.ip)),
            NODE_HTTP_PORT,
          );
          if (answers.some((r) => r.status !== 200 || !(JSON.parse(r.body) as PodProgramStatus).programmed)) return false;
        }
        return true;
      },
      30_000,
      { intervalMs: 250, explain: evidence },
    );
    const a = (await podProgram(pod('n2p1'))).body!;
    assert.equal(a.domain, SERVICE_A);
    assert.equal(a.hostVeth, 'kmcv1', 'bridge node: the port found by scanning the bridge');
    for (const p of NONE()) {
      const r = await podProgram(p);
      assert.ok(r.status === 404 || (r.status === 200 && r.body?.programmed === false && r.body.reason === 'not_member'), `${p.name}: ${JSON.stringify(r)}`);
    }
    // A pod on another node is not local to node 1.
    const remote = await netnsFetch(node(1).netns, podStatusPath(pod('n2p1').ip), NODE_HTTP_PORT);
    assert.equal((JSON.parse(remote.body) as PodProgramStatus).reason, 'not_local');
    const st = await nodeStatus(2);
    assert.equal(st.mode, 'node');
    assert.equal(st.domains.find((d) => d.service === SERVICE_A)?.localMembers.length, 3);
  });

  test('calico sender: 239.x, 224.0.0.251 and broadcast exactly once at every member, nothing elsewhere', async (t) => {
    if (!needRoot(t)) return;
    const sender = pod('n1p1');
    assertDelivered(sender, await round(sender, { waitJoins: true }));
  });

  test('bridge sender: the same, the capture runs before the node bridge', async (t) => {
    if (!needRoot(t)) return;
    const sender = pod('n2p1');
    assertDelivered(sender, await round(sender, { waitJoins: true }));
  });

  test('a second domain is isolated both ways', async (t) => {
    if (!needRoot(t)) return;
    const sender = pod('n1p3');
    const rx = new Map<string, NodeReceiver>();
    for (const p of [...A(), pod('n4p4')]) rx.set(p.name, await startNodeReceiver(p.netns, { port: PORT, groups: [G, LL] }));
    await waitFor('node 1 replicates G of domain B to node 4', async () => (await mdbDsts(1, 'kmcvx200', G)).join() === node(4).underlayIp, 10_000, { intervalMs: 50, explain: evidence });
    for (const dst of [G, LL, BC]) await sendFromPod(sender.netns, dst, { port: PORT, count: N, intervalMs: 5 });
    await rx
      .get('n4p4')!
      .waitTotal(3 * N, 5000)
      .catch(() => undefined); // the assertions below say what is missing
    await settle(300);
    const reports = new Map<string, NodeReceiverReport>();
    for (const [n, r] of rx) reports.set(n, await r.stop());
    for (const dst of [G, LL, BC]) assert.equal(received(reports.get('n4p4')!, dst, sender.ip), N, `B member n4p4 got ${dst}`);
    for (const p of A()) for (const dst of [G, LL, BC]) assert.equal(receivedAny(reports.get(p.name)!, dst), 0, `A member ${p.name} heard domain B's ${dst}`);
  });

  test('on the wire: 1 sender, 9 receivers on 3 other nodes = 3 VXLAN copies per datagram; none once they left', async (t) => {
    if (!needRoot(t)) return;
    const sender = pod('n1p1');
    const receivers = A().filter((p) => p.node !== 1);
    assert.equal(receivers.length, 9);
    await runner.run(['nft', '-f', '-'], {
      netns: node(1).netns,
      input: 'table ip kmctest {\n chain out {\n  type filter hook output priority 0; policy accept;\n  oifname "kmcup" udp dport 7472 counter\n }\n}\n',
    });
    const out = async (): Promise<number> => {
      const r = await runner.run(['nft', '-j', 'list', 'table', 'ip', 'kmctest'], { netns: node(1).netns });
      return Number(/"counter":\s*\{\s*"packets":\s*(\d+)/.exec(r.stdout)?.[1] ?? NaN);
    };
    const rx = await Promise.all(receivers.map((p) => startNodeReceiver(p.netns, { port: PORT, groups: [G] })));
    await waitFor('node 1 replicates G to nodes 2-4', async () => (await mdbDsts(1, DEV_A, G)).join() === otherMemberNodes(sender).join(), 10_000, { intervalMs: 50, explain: evidence });
    await settle(1500); // the receivers' unsolicited IGMP report retransmissions are over
    let before0 = await out();
    await sendFromPod(sender.netns, G, { port: PORT, count: N, intervalMs: 5 });
    await Promise.all(rx.map((r) => r.waitTotal(N, 5000).catch(() => undefined))); // the assertions below say what is missing
    assert.equal((await out()) - before0, 3 * N, 'exactly one VXLAN copy per member node per datagram');
    for (const [i, r] of rx.entries()) assert.equal(received(await r.stop(), G, sender.ip), N, `${receivers[i]!.name} got every datagram once`);
    await waitFor('every receiver left: node 1 replicates G to nobody', async () => (await mdbDsts(1, DEV_A, G)).length === 0, 10_000, { intervalMs: 50, explain: evidence });
    await settle(1500);
    before0 = await out();
    await sendFromPod(sender.netns, G, { port: PORT, count: N, intervalMs: 5 });
    await settle(300);
    assert.equal((await out()) - before0, 0, 'a group no member node joined never leaves the node');
    await runner.run(['nft', 'delete', 'table', 'ip', 'kmctest'], { netns: node(1).netns });
  });

  test('keepalived with interface eth0 on two nodes elects exactly one MASTER', async (t) => {
    if (!needRoot(t)) return;
    const ka = await keepalivedPair();
    try {
      await waitFor('one keepalived instance holds the VIP', async () => (await vipHolders()).length === 1, 20_000, { intervalMs: 250, explain: evidence });
      // Stable: the BACKUP keeps hearing the MASTER's adverts (TTL 255 intact, or it would refuse them).
      for (let i = 0; i < 8; i++) {
        await sleep(500);
        const h = await vipHolders();
        assert.deepEqual(h, ['n1p2'], `exactly the priority-100 instance is MASTER, got ${JSON.stringify(h)}`);
      }
    } finally {
      await ka.stop();
    }
  });

  test('node agent SIGKILL and restart: traffic goes on meanwhile, no duplicates after', async (t) => {
    if (!needRoot(t)) return;
    const sender = pod('n2p1');
    const r = await openRound(sender, { waitJoins: true });
    await agents.get(2)!.stop('SIGKILL');
    agents.delete(2);
    // Without its agent, node 2's data plane still captures, copies locally and replicates.
    await r.send();
    await startAgent(2);
    await waitFor('node 2 agent ready again', async () => (await netnsFetch(node(2).netns, '/readyz', NODE_HTTP_PORT)).status === 200, 20_000, { intervalMs: 200, explain: evidence });
    await waitFor('node 2 replicates G to every other member node', async () => (await mdbDsts(2, DEV_A, G)).join() === otherMemberNodes(sender).join(), 10_000, { intervalMs: 50, explain: evidence });
    // The restarted agent adopted the data plane: every datagram still arrives exactly once.
    await r.send();
    assertDelivered(sender, await r.finish());
    assertDelivered(pod('n1p1'), await round(pod('n1p1'), { waitJoins: true }));
  });

  test('a new pod started while traffic flows is served within seconds; the others lose and double nothing', async (t) => {
    if (!needRoot(t)) return;
    const sender = pod('n1p1');
    await waitFor(`no node replicates ${G}`, async () => (await mdbDsts(1, DEV_A, G)).length === 0, 15_000, { intervalMs: 100, explain: evidence });
    const old = await Promise.all(['n2p1', 'n3p1'].map((n) => startNodeReceiver(pod(n).netns, { port: PORT, groups: [G] })));
    await waitFor('node 1 replicates G to nodes 2 and 3', async () => (await mdbDsts(1, DEV_A, G)).join() === [node(2).underlayIp, node(3).underlayIp].join(), 10_000, {
      intervalMs: 50,
      explain: evidence,
    });
    const total = 300;
    const flowing = sendFromPod(sender.netns, G, { port: PORT, count: total, intervalMs: 20 });
    const fresh = await addPod(lab, 3, runner); // its IP joins the domain's DNS answer
    const rx = await startNodeReceiver(fresh.netns, { port: PORT, groups: [G] });
    await waitFor(`new pod ${fresh.name} programmed`, async () => (await podProgram(fresh)).body?.programmed === true, 10_000, { intervalMs: 100, explain: evidence });
    await flowing;
    await Promise.all(old.map((r) => r.waitTotal(total, 5000).catch(() => undefined))); // the assertions below say what is missing
    await settle(300);
    const got = await rx.stop();
    const reports = await Promise.all(old.map((r) => r.stop()));
    for (const [i, rep] of reports.entries()) assert.equal(received(rep, G, sender.ip), total, `${['n2p1', 'n3p1'][i]} got every datagram exactly once while node 3 was reprogrammed`);
    const n = received(got, G, sender.ip);
    assert.ok(n > 0 && n < total, `the new pod hears the flow from the moment it is programmed: ${n} of ${total}`);
    assert.equal(receivedAny(got, G), n, 'only from the sender');
    await removePod(lab, fresh, runner);
    await waitFor(
      'node 3 forgets the removed pod',
      async () => {
        const st = await nodeStatus(3);
        return st.domains.find((d) => d.service === SERVICE_A)?.localMembers.every((m) => m.podIp !== fresh.ip) === true && st.ruleset.installed;
      },
      10_000,
      { intervalMs: 200, explain: evidence },
    );
  });

  test('the node link cut and healed: the peers expire node 4, then take it back', async (t) => {
    if (!needRoot(t)) return;
    await cutNode(lab, 4, runner);
    try {
      await waitFor('node 1 expired node 4', async () => (await nodeStatus(1)).domains[0]!.peers.find((p) => p.ip === node(4).underlayIp)?.state === 'expired', 20_000, {
        intervalMs: 250,
        explain: evidence,
      });
    } finally {
      await healNode(lab, 4, runner);
    }
    const sender = pod('n1p1');
    assertDelivered(sender, await round(sender, { waitJoins: true }));
  });

  // keepalived in n1p2 (calico, priority 100) and n2p2 (bridge, priority 90), both `state BACKUP`.
  async function keepalivedPair(): Promise<{ stop(): Promise<void> }> {
    const children: ChildProcess[] = [];
    for (const [name, prio] of [
      ['n1p2', 100],
      ['n2p2', 90],
    ] as const) {
      const p = pod(name);
      const conf = join(lab.stateDir, `${name}.keepalived.conf`);
      writeFileSync(
        conf,
        `global_defs {\n  router_id ${name}\n}\n\nvrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority ${prio}\n  advert_int 1\n  virtual_ipaddress {\n    ${VIP}/32\n  }\n}\n`,
      );
      const argv = [
        'keepalived',
        '--dont-fork',
        '--log-console',
        '--log-detail',
        '--vrrp',
        '--no-syslog',
        '-f',
        conf,
        '-p',
        join(lab.stateDir, `${name}.keepalived.pid`),
        '-r',
        join(lab.stateDir, `${name}.vrrp.pid`),
      ];
      children.push(spawnInNetns(p.netns, argv, { logFile: join(lab.stateDir, `${name}.keepalived.log`) }));
    }
    return {
      async stop(): Promise<void> {
        for (const c of children) c.kill('SIGTERM');
        await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
      },
    };
  }

  async function vipHolders(): Promise<string[]> {
    const out: string[] = [];
    for (const name of ['n1p2', 'n2p2']) {
      const r = await runInNetns(pod(name).netns, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
      if (r.stdout.includes(`"${VIP}"`)) out.push(name);
    }
    return out;
  }
});
