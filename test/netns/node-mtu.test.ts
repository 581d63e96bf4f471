/**
 * Node mode with datagrams larger than the overlay MTU: VXLAN packets fragmented on the underlay.
 * Lab: n1 calico 1500, n2 bridge 1500, n3 calico 1450 (underlay, bridge and pods), LAN on n1.
 * A reassembled VXLAN packet is CHECKSUM_COMPLETE and a netdev dup of it straight from the VXLAN
 * device reached pods with a stale checksum (dropped, UdpInCsumErrors); the delivery hop fixes
 * that. Every member on every node must get each datagram exactly once, 1200 to 65000 bytes,
 * from python, iperf2 (default 1470 bytes) and socat, and no pod may count a checksum error; a
 * frame longer than a receiving pod's MTU (from a 1500-MTU pod to one on the 1450 node) cannot
 * pass its veth and must be counted in /status as that member's oversize, exactly.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addPod, labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { addLan } from '../../src/lab/lan.js';
import { startIperfServer } from '../../src/lab/iperf.js';
import { agentsEvidence, netnsFetch, runInNetns, spawnInNetns, startNodeAgent, waitExit, waitFor } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabLan, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { keepLab, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = 'kmcast-peers.default.svc.cluster.local';
const G = '239.4.4.4';
const LL = '224.0.0.252';
const GW = '239.5.5.5';
const PORT = 7800;
const SIZES = [1200, 1400, 1472, 8000, 65000];

/** Counts datagrams by their tag (the payload up to '|'); stops 0.5 s after `expect` arrived, at `max` s, or on SIGTERM. */
const RECEIVER_PY = `
import json, signal, socket, sys, time
port, addr, groups, expect, max_s = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(','), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(('', port))
for g in groups:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(g) + socket.inet_aton(addr))
print('ready', flush=True)
class Stop(Exception): pass
def stop(*_): raise Stop()
signal.signal(signal.SIGTERM, stop)
counts, total, end = {}, 0, time.time() + max_s
while time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try:
        d = s.recv(70000)
    except (socket.timeout, Stop):
        break
    tag = d.split(b'|', 1)[0].decode(errors='replace')
    counts[tag] = counts.get(tag, 0) + 1
    total += 1
    if total == expect:
        end = min(end, time.time() + 0.5)
print(json.dumps(counts), flush=True)
`;

/** Sends each size \`count\` times to group:port from \`addr\` (IP_MULTICAST_IF), tagged tag:size:i. */
const SENDER_PY = `
import socket, sys, time
group, port, addr, tag, sizes, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], [int(x) for x in sys.argv[5].split(',')], int(sys.argv[6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
for size in sizes:
    for i in range(count):
        head = ('%s:%d:%d|' % (tag, size, i)).encode()
        s.sendto(head + b'x' * (size - len(head)), (group, port))
        time.sleep(0.003)
`;

interface Rx {
  readonly name: string;
  /** Its counts; `stop`: end it now (a receiver that expects nothing, once the others are done). */
  done(stop?: boolean): Promise<Record<string, number>>;
}

async function startRx(name: string, netns: string, addr: string, groups: readonly string[], expect: number, maxS: number): Promise<Rx> {
  const child = spawnInNetns(netns, ['python3', '-c', RECEIVER_PY, String(PORT), addr, groups.join(','), String(expect), String(maxS)]);
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  await waitFor(
    `receiver in ${netns} ready`,
    async () => {
      if (child.exitCode !== null) throw new Error(`receiver in ${netns} exited: ${err}`);
      return out.includes('ready');
    },
    10_000,
    { intervalMs: 20 },
  );
  return {
    name,
    async done(stop = false) {
      if (stop) child.kill('SIGTERM');
      await waitExit(child, (maxS + 5) * 1000);
      const last = out.trim().split('\n').at(-1) ?? '{}';
      return JSON.parse(last) as Record<string, number>;
    },
  };
}

async function send(netns: string, group: string, addr: string, tag: string, sizes: readonly number[], count: number): Promise<void> {
  const r = await runInNetns(netns, ['python3', '-c', SENDER_PY, group, String(PORT), addr, tag, sizes.join(','), String(count)], 30_000);
  assert.equal(r.code, 0, `sender in ${netns}: ${r.stderr}`);
}

/** The tags a sender of `sizes` x `count` sends. */
const tags = (tag: string, sizes: readonly number[], count: number): string[] => sizes.flatMap((s) => Array.from({ length: count }, (_, i) => `${tag}:${s}:${i}`));

/** IP frames longer than `mtu` that a `size`-byte UDP datagram becomes on a sender with MTU `senderMtu`. Pure. */
function framesOver(size: number, senderMtu: number, mtu: number): number {
  const ip = size + 28;
  if (ip <= senderMtu) return ip > mtu ? 1 : 0;
  const per = Math.floor((senderMtu - 20) / 8) * 8;
  const n = Math.ceil((size + 8) / per);
  const last = size + 8 - per * (n - 1) + 20;
  return (per + 20 > mtu ? n - 1 : 0) + (last > mtu ? 1 : 0);
}

/** The datagram reaches a pod of MTU `mtu` whole: every frame of it fits. Pure. */
const fits = (size: number, senderMtu: number, mtu: number): boolean => framesOver(size, senderMtu, mtu) === 0;

async function csumErrors(netns: string): Promise<number> {
  const r = await runInNetns(netns, ['cat', '/proc/net/snmp']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const head = lines[0]!.split(/\s+/);
  const vals = lines[1]!.split(/\s+/);
  return Number(vals[head.indexOf('InCsumErrors')]);
}

describe('node mode: datagrams over the overlay MTU, fragmented on the underlay, exactly once', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let lan: LabLan;
  const agents = new Map<number, NodeAgentHandle>();
  /** What the agents show, quoted when a wait times out. */
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => lab.nodes.find((n) => n.index === i)!;
  const MEMBERS = (): LabPod[] => lab.pods.filter((p) => p.name !== 'n2p3');
  const base = ['--service', `${SERVICE}=100`, '--heartbeat-interval', '200', '--resolve-interval', '500', '--joins-interval', '1000'];

  async function nodeStatus(i: number): Promise<NodeStatus> {
    return JSON.parse((await netnsFetch(node(i).netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
  }

  const mtuOf = (p: LabPod): number => (p.node === 3 ? 1450 : 1500);

  /** Oversize frames /status counts per member pod, by pod name. */
  async function oversize(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const n of lab.nodes) {
      for (const m of (await nodeStatus(n.index)).domains[0]!.localMembers) out.set(lab.pods.find((p) => p.ip === m.podIp)!.name, m.oversize ?? 0);
    }
    return out;
  }

  /**
   * Every member but `sender` receives exactly once each datagram whose frames fit its MTU, and
   * nothing else; its /status oversize grows by exactly the frames that did not fit; no member
   * counts a UDP checksum error; a pod outside the domain gets nothing.
   */
  async function round(
    sender: { name: string; netns: string; mtu: number; node?: number },
    groups: readonly string[],
    sent: ReadonlyArray<{ tag: string; size: number }>,
    act: () => Promise<void>,
  ): Promise<void> {
    const others = MEMBERS().filter((p) => p.name !== sender.name);
    const want = (p: LabPod): string[] => sent.filter((d) => fits(d.size, sender.mtu, mtuOf(p))).map((d) => d.tag);
    const over = (p: LabPod): number => (p.node === sender.node ? 0 : sent.reduce((n, d) => n + framesOver(d.size, sender.mtu, mtuOf(p)), 0));
    const csum0 = new Map(await Promise.all(MEMBERS().map(async (p) => [p.name, await csumErrors(p.netns)] as const)));
    const over0 = await oversize();
    const rx = await Promise.all(others.map(async (p) => ({ p, r: await startRx(p.name, p.netns, p.ip, groups, want(p).length, 15) })));
    const outsider = await startRx('n2p3', pod('n2p3').netns, pod('n2p3').ip, groups, 1, 15);
    await act();
    // Those that expect datagrams first: once they have all theirs (and 0.5 s more), anything
    // bound for the others has arrived too, and they are stopped.
    rx.sort((a, b) => Number(want(a.p).length === 0) - Number(want(b.p).length === 0));
    for (const { p, r } of rx) {
      const got = await r.done(want(p).length === 0);
      const w = want(p);
      const missing = w.filter((t) => got[t] === undefined);
      const twice = Object.entries(got).filter(([, n]) => n !== 1);
      assert.deepEqual({ missing, twice, extra: Object.keys(got).filter((t) => !w.includes(t)) }, { missing: [], twice: [], extra: [] }, `${r.name} (sender ${sender.name})`);
    }
    assert.deepEqual(await outsider.done(true), {}, 'a pod outside the domain gets nothing');
    for (const p of MEMBERS()) assert.equal((await csumErrors(p.netns)) - csum0.get(p.name)!, 0, `${p.name} counted UDP checksum errors`);
    await waitFor(
      'every oversize frame counted in /status',
      async () => {
        const now = await oversize();
        return others.every((p) => now.get(p.name)! - over0.get(p.name)! === over(p));
      },
      5_000,
      { intervalMs: 200, explain: evidence },
    ).catch(async () => {
      const now = await oversize();
      assert.fail(`oversize per pod (counted/expected): ${others.map((p) => `${p.name} ${now.get(p.name)! - over0.get(p.name)!}/${over(p)}`).join(', ')}`);
    });
  }

  const sends = (tag: string, sizes: readonly number[], count: number): Array<{ tag: string; size: number }> =>
    sizes.flatMap((size) => Array.from({ length: count }, (_, i) => ({ tag: `${tag}:${size}:${i}`, size })));
  const asSender = (p: LabPod): { name: string; netns: string; mtu: number; node: number } => ({ name: p.name, netns: p.netns, mtu: mtuOf(p), node: p.node });

  before(async () => {
    lab = await labUp({ id: testLabId('mtu'), nodes: ['calico', 'bridge', 'calico'], podsPerNode: 2, mtu: 1500, nodeMtu: { 3: 1450 }, service: SERVICE }, { runner });
    await addPod(lab, 2, runner); // n2p3: not a member
    await setServiceMembers(
      lab,
      MEMBERS().map((p) => p.ip),
    );
    lan = await addLan(lab, runner, { nodes: [1], hosts: 1 });
  });

  after(async () => {
    if (keepLab()) return;
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
  });

  test('baseline: the MTUs are as planned, and without agents nothing crosses nodes', async () => {
    const mtu = async (netns: string, dev: string): Promise<number> => Number(/mtu (\d+)/.exec((await runInNetns(netns, ['ip', 'link', 'show', 'dev', dev])).stdout)?.[1]);
    assert.equal(await mtu(node(1).netns, 'kmcup'), 1500);
    assert.equal(await mtu(node(3).netns, 'kmcup'), 1450);
    assert.equal(await mtu(pod('n3p1').netns, 'eth0'), 1450);
    assert.equal(await mtu(pod('n2p1').netns, 'eth0'), 1500);
    const rx = await startRx('n3p1', pod('n3p1').netns, pod('n3p1').ip, [G], 1, 1.5);
    await send(pod('n1p1').netns, G, pod('n1p1').ip, 'base', [1200], 3);
    assert.deepEqual(await rx.done(), {});
  });

  test('agents: every member programmed on every node', async () => {
    const gw = ['--gateway-interface', 'kmclan', '--gateway-group', `${GW}=both`];
    for (const n of lab.nodes) agents.set(n.index, await startNodeAgent(lab, n, n.index === 1 ? [...base, ...gw] : base));
    await waitFor(
      'every member programmed, every peer alive',
      async () => {
        for (const n of lab.nodes) {
          const s = await nodeStatus(n.index).catch(() => undefined);
          const d = s?.domains[0];
          if (!s?.ready || !d || d.localMembers.some((m) => !m.programmed) || d.peers.filter((p) => p.state === 'alive').length !== 2) return false;
        }
        return true;
      },
      30_000,
      { explain: evidence },
    );
  });

  for (const [sender, what] of [
    ['n1p1', '1500-MTU calico node'],
    ['n2p1', '1500-MTU bridge node'],
    ['n3p1', '1450-MTU calico node'],
  ] as const) {
    test(`python from a pod on the ${what}: 1200 to 65000 bytes, a group and 224.0.0.x, once everywhere`, async () => {
      const s = pod(sender);
      const sent = [...sends(`${sender}-g`, SIZES, 1), ...sends(`${sender}-ll`, SIZES, 1)];
      await round(asSender(s), [G, LL], sent, async () => {
        // Receivers joined just now: wait until every other node announced G before sending.
        await waitFor(
          `${sender}'s node sees ${G} joined on the other nodes`,
          async () => {
            const d = (await nodeStatus(s.node)).domains[0]!;
            return d.peers.filter((p) => p.state === 'alive' && p.groups.includes(G)).length === 2;
          },
          10_000,
          { intervalMs: 50, explain: evidence },
        );
        await send(s.netns, G, s.ip, `${sender}-g`, SIZES, 1);
        await send(s.netns, LL, s.ip, `${sender}-ll`, SIZES, 1);
      });
    });
  }

  test('the delivery hop deleted by hand comes back, the ruleset is reloaded onto it, delivery goes on', async () => {
    const applies = async (): Promise<number> => Number(/kmcast_node_ruleset_applies_total\{result="ok"\} (\d+)/.exec((await netnsFetch(node(2).netns, '/metrics', NODE_HTTP_PORT)).body)?.[1] ?? 0);
    const ports = async (): Promise<string> => {
      const r = await runInNetns(node(2).netns, ['ip', '-j', 'link', 'show', 'master', 'kmcdb100']);
      return r.code === 0
        ? (JSON.parse(r.stdout) as Array<{ ifname: string }>)
            .map((l) => l.ifname)
            .sort()
            .join()
        : '';
    };
    assert.equal(await ports(), 'kmcdo100,kmcdp100', 'baseline: the hop is built');
    const before = await applies();
    const del = await runInNetns(node(2).netns, ['ip', 'link', 'del', 'kmcdb100']);
    assert.equal(del.code, 0, del.stderr);
    await waitFor('node 2 rebuilt the hop and reloaded its ruleset', async () => (await ports()) === 'kmcdo100,kmcdp100' && (await applies()) > before, 20_000, { intervalMs: 200, explain: evidence });
    const s = pod('n1p1');
    await round(asSender(s), [G], sends('again', [1472, 8000], 1), async () => {
      await waitFor(
        `node 1 sees ${G} joined on the other nodes`,
        async () => {
          const d = (await nodeStatus(1)).domains[0]!;
          return d.peers.filter((p) => p.state === 'alive' && p.groups.includes(G)).length === 2;
        },
        10_000,
        { intervalMs: 50, explain: evidence },
      );
      await send(s.netns, G, s.ip, 'again', [1472, 8000], 1);
    });
  });

  test('iperf2 with its default datagram size (1470) and socat (1472) from a 1500-MTU pod', async () => {
    const s = pod('n1p1');
    // The 1450-MTU node's pods cannot take 1498-byte frames (counted as oversize, tested above).
    const servers = await Promise.all(
      MEMBERS()
        .filter((p) => p !== s && mtuOf(p) === 1500)
        .map(async (p) => ({ p, srv: await startIperfServer(p.netns, { group: G, port: PORT + 1 }) })),
    );
    await waitFor(
      `node 1 sees ${G} joined on node 2`,
      async () => {
        const d = (await nodeStatus(1)).domains[0]!;
        return d.peers.some((p) => p.ip === node(2).underlayIp && p.state === 'alive' && p.groups.includes(G));
      },
      10_000,
      { intervalMs: 50, explain: evidence },
    );
    const before = new Map(await Promise.all(MEMBERS().map(async (p) => [p.name, await csumErrors(p.netns)] as const)));
    const r = await runInNetns(s.netns, ['iperf', '-c', G, '-u', '-p', String(PORT + 1), '-T', '8', '-b', '200pps', '-t', '2'], 20_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /1470 byte datagrams/, 'iperf2 sends its default size');
    const reports = await Promise.all(servers.map(async ({ p, srv }) => ({ p, loss: await srv.stop() })));
    for (const { p, loss } of reports) {
      assert.ok(loss, `${p.name}: iperf server got nothing`);
      assert.ok(loss.total > 300, `${p.name}: ${JSON.stringify(loss)}`);
      assert.equal(loss.lost, 0, `${p.name}: ${JSON.stringify(loss)}`);
    }
    for (const p of MEMBERS()) assert.equal((await csumErrors(p.netns)) - before.get(p.name)!, 0, `${p.name} counted UDP checksum errors`);
    await round(asSender(s), [G], [{ tag: 'socat:1472:0', size: 1472 }], async () => {
      const payload = `socat:1472:0|${'y'.repeat(1472 - 13)}`;
      const x = await runInNetns(s.netns, ['socat', '-u', 'STDIN', `UDP4-DATAGRAM:${G}:${PORT},ip-multicast-if=${s.ip},ip-multicast-ttl=8`], 10_000, payload);
      assert.equal(x.code, 0, x.stderr);
    });
  });

  test('gateway on n1: LAN datagrams reach every member; pods on every node reach the LAN', async () => {
    const h = lan.hosts[0]!;
    await waitFor(
      'the gateway is active and installed',
      async () => {
        const g = (await nodeStatus(1)).gateway;
        return g?.active === true && g.table.installed;
      },
      15_000,
      { intervalMs: 100, explain: evidence },
    );
    // 1400 bytes fit every pod (fragmented over VXLAN to node 3); 1472 fit the 1500-MTU pods only.
    const sent = sends('lan', [1400, 1472], 3);
    await round({ name: 'h1', netns: h.netns, mtu: 1500 }, [GW], sent, async () => {
      await waitFor(
        `node 1 sees ${GW} joined on the other nodes`,
        async () => {
          const d = (await nodeStatus(1)).domains[0]!;
          return d.peers.filter((p) => p.state === 'alive' && p.groups.includes(GW)).length === 2;
        },
        10_000,
        { intervalMs: 50, explain: evidence },
      );
      await send(h.netns, GW, h.ip, 'lan', [1400, 1472], 3);
    });

    const out = ['n1p1', 'n2p1', 'n3p1'];
    const wantOut = out.flatMap((n) => tags(`out-${n}`, [1472, 8000], 2));
    const hostRx = await startRx('h1', h.netns, h.ip, [GW], wantOut.length, 15);
    const hostBefore = await csumErrors(h.netns);
    for (const n of out) await send(pod(n).netns, GW, pod(n).ip, `out-${n}`, [1472, 8000], 2);
    assert.deepEqual(await hostRx.done(), Object.fromEntries(wantOut.map((t) => [t, 1])), 'the LAN host gets every pod datagram once');
    assert.equal((await csumErrors(h.netns)) - hostBefore, 0, 'the LAN host counted UDP checksum errors');
  });
});
