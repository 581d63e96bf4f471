/**
 * Sidecar mode with apps that name eth0: joins by eth0's index, sends with IP_MULTICAST_IF eth0,
 * broadcast out of eth0, and a real program (socat ip-add-membership=GROUP:eth0). 3 nodes
 * (calico, bridge, calico) x 2 pods, every pod a member. Baseline first: with the agents running
 * --capture off, the eth0 combinations do not cross nodes; then with the capture every receiver
 * in every other pod gets every datagram exactly once, counted per (join mode, sender, send mode).
 * Selective replication of groups joined on eth0 is read off the wire (an nftables counter on the
 * sender's VXLAN output), and drift (the chain deleted, vx0 re-created) is repaired.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp } from '../../src/lab/lab.js';
import type { AgentHandle } from '../../src/lab/process.js';
import { agentsEvidence, KMCAST_MAIN, findPython, findTool, podFetch, runInNetns, spawnInNetns, startAgent, waitFor, settle } from '../../src/lab/process.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { parseCapture } from '../../src/overlay/capture.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const N = 10;
const BASE_PORT = 7610;
/** One group (and port) per join mode, so each mode is proven on its own. */
const JOINS = ['route', 'addr', 'eth0', 'vx0'] as const;
type JoinMode = (typeof JOINS)[number];
const GROUP: Record<JoinMode, string> = { route: '239.10.0.1', addr: '239.10.0.2', eth0: '239.10.0.3', vx0: '239.10.0.4' };
const PORT: Record<JoinMode, number> = { route: BASE_PORT, addr: BASE_PORT + 1, eth0: BASE_PORT + 2, vx0: BASE_PORT + 3 };
const BCAST_PORT = BASE_PORT + 4;
/** route: no interface named; addr: IP_MULTICAST_IF by the pod IP; eth0: IP_MULTICAST_IF by eth0's index. */
const SENDS = ['route', 'addr', 'eth0'] as const;
const SOCAT_GROUP = '239.10.0.5';
const SOCAT_PORT = BASE_PORT + 5;

/**
 * One python3 process per pod: a socket per join mode (route: INADDR_ANY; addr: the pod IP;
 * eth0/vx0: ip_mreqn with the interface index) and one for broadcast; counts datagrams by
 * (socket, source address, tag) and prints them as JSON when asked ("c\n" on stdin).
 */
const RECEIVER = `
import json, socket, struct, sys, select
pod_ip, base, groups, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(','), sys.argv[4].split(',')
def bound(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
    return s
socks = {}
for i, m in enumerate(modes):
    s = bound(base + i)
    g = socket.inet_aton(groups[i])
    if m == 'route':
        mreq = struct.pack('4s4s', g, socket.inet_aton('0.0.0.0'))
    elif m == 'addr':
        mreq = struct.pack('4s4s', g, socket.inet_aton(pod_ip))
    else:
        mreq = struct.pack('4s4si', g, socket.inet_aton('0.0.0.0'), socket.if_nametoindex(m))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    socks[s] = m
socks[bound(base + len(modes))] = 'bcast'
counts = {}
print('READY', flush=True)
while True:
    r, _, _ = select.select(list(socks) + [sys.stdin], [], [])
    for s in r:
        if s is sys.stdin:
            if not sys.stdin.readline():
                sys.exit(0)
            print(json.dumps(counts), flush=True)
            continue
        data, src = s.recvfrom(2048)
        if data.startswith(b'kmc10 '):
            k = '%s|%s|%s' % (socks[s], src[0], data.split()[1].decode())
            counts[k] = counts.get(k, 0) + 1
`;

/**
 * Sends N datagrams to each GROUP:PORT target, tagged; mode: route, addr, eth0 (IP_MULTICAST_IF
 * by index), bind (SO_BINDTODEVICE eth0), ucif (IP_UNICAST_IF eth0: the kernel applies it, not
 * IP_MULTICAST_IF, to 255.255.255.255).
 */
const SENDER = `
import socket, struct, sys, time
pod_ip, mode, tag, n, targets = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(',')
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
if mode == 'addr':
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(pod_ip))
elif mode == 'eth0':
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack('4s4si', socket.inet_aton('0.0.0.0'), socket.inet_aton('0.0.0.0'), socket.if_nametoindex('eth0')))
elif mode == 'bind':
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth0')
elif mode == 'ucif':
    s.setsockopt(socket.IPPROTO_IP, 50, struct.pack('!I', socket.if_nametoindex('eth0')))  # IP_UNICAST_IF
for i in range(n):
    for t in targets:
        g, p = t.split(':')
        s.sendto(b'kmc10 %s %d\\n' % (tag.encode(), i), (g, int(p)))
    time.sleep(0.002)
`;

type Counts = Record<string, number>;

class Receiver {
  private out = '';
  constructor(
    readonly pod: LabPod,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (b: Buffer) => (this.out += b.toString()));
  }
  static async start(pod: LabPod): Promise<Receiver> {
    const argv = [findPython(), '-c', RECEIVER, pod.ip, String(BASE_PORT), JOINS.map((j) => GROUP[j]).join(','), JOINS.join(',')];
    const r = new Receiver(pod, spawnInNetns(pod.netns, argv, { stdin: 'pipe' }));
    let err = '';
    r.child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    await waitFor(
      `receiver in ${pod.name}`,
      async () => {
        if (r.child.exitCode !== null) throw new Error(`receiver in ${pod.name} exited: ${err}`);
        return r.out.includes('READY');
      },
      5000,
      { intervalMs: 20 },
    );
    return r;
  }
  async counts(): Promise<Counts> {
    const before = this.out.length;
    this.child.stdin?.write('c\n');
    const line = await waitFor('receiver counts', async () => /^\{.*\}$/m.exec(this.out.slice(before))?.[0], 3000, { intervalMs: 10 });
    return JSON.parse(line) as Counts;
  }
  stop(): void {
    this.child.stdin?.end();
    this.child.kill();
  }
}

async function send(pod: LabPod, mode: string, tag: string, targets: readonly string[], n = N): Promise<void> {
  const r = await runInNetns(pod.netns, [findPython(), '-c', SENDER, pod.ip, mode, tag, String(n), targets.join(',')], 20_000);
  assert.equal(r.code, 0, r.stderr);
}

const allGroups = JOINS.map((j) => `${GROUP[j]}:${PORT[j]}`);

async function groupEntries(pod: LabPod, group: string): Promise<string[]> {
  return (await new IpClient(runner, pod.netns).bridge.mdb('vx0'))
    .filter((e) => e.grp === group)
    .map((e) => e.dst ?? '')
    .sort();
}

async function floodPeers(pod: LabPod): Promise<string[]> {
  return (await new IpClient(runner, pod.netns).bridge.fdb('vx0')).filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst ?? '');
}

interface Status {
  capture?: { path: string; underlay: string; installed: boolean; forwarded: number };
  groupsByInterface?: Record<string, string[]>;
  localGroups: string[];
}
async function status(pod: LabPod): Promise<Status> {
  return JSON.parse((await podFetch(pod, '/status')).body) as Status;
}

async function captureRule(pod: LabPod): Promise<ReturnType<typeof parseCapture>> {
  const r = await runner.run(['nft', 'list', 'table', 'netdev', 'kmcast'], { netns: pod.netns, allowFail: true });
  return r.code === 0 ? parseCapture(r.stdout) : undefined;
}

/** VXLAN datagrams the pod sent so far (nftables counter on its output path). */
async function vxlanOut(pod: LabPod): Promise<number> {
  const r = await runner.run(['nft', '-j', 'list', 'table', 'ip', 'kmctest'], { netns: pod.netns });
  const m = /"counter":\s*\{\s*"packets":\s*(\d+)/.exec(r.stdout);
  return Number(m?.[1] ?? NaN);
}

/** Waits until the counts stop growing (every datagram delivered, and any duplicate too). */
async function settledCounts(receivers: readonly Receiver[], expectTotal: (r: Receiver) => number): Promise<Map<Receiver, Counts>> {
  const total = (c: Counts): number => Object.values(c).reduce((a, b) => a + b, 0);
  await waitFor(
    'every receiver has its datagrams',
    async () => {
      for (const r of receivers) if (total(await r.counts()) < expectTotal(r)) return false;
      return true;
    },
    5000,
    { intervalMs: 100 },
  ).catch(() => undefined); // the assertions below say what is missing
  await settle(300); // late duplicates would arrive now
  const out = new Map<Receiver, Counts>();
  for (const r of receivers) out.set(r, await r.counts());
  return out;
}

describe('sidecar mode: apps that name eth0', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  const agents = new Map<string, AgentHandle>();
  /** What the agents show, quoted when a wait times out. */
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  let receivers: Receiver[] = [];
  const agentArgs = ['--heartbeat-interval', '500', '--resolve-interval', '1000', '--resync-interval', '2000'];
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  /** A calico-node sender and a bridge-node sender: same-node receivers of both styles. */
  const senders = (): LabPod[] => [pod('n1p1'), pod('n2p1')];

  async function startAgents(extra: readonly string[]): Promise<void> {
    for (const p of lab.pods) agents.set(p.name, await startAgent(lab, p, [...agentArgs, ...extra]));
    await waitFor(
      'every pod floods to every other',
      async () => {
        for (const p of lab.pods) if ((await floodPeers(p)).length !== lab.pods.length - 1) return false;
        return true;
      },
      40_000,
      { intervalMs: 200, explain: evidence },
    );
  }
  async function stopAgents(): Promise<void> {
    await Promise.all([...agents.values()].map((a) => a.stop('SIGTERM')));
    agents.clear();
  }
  async function waitReplicated(modes: readonly JoinMode[]): Promise<void> {
    let missing = '';
    await waitFor(
      `senders replicate ${modes.join(', ')} groups to every other pod`,
      async () => {
        for (const s of senders()) {
          const want = lab.pods
            .filter((p) => p !== s)
            .map((p) => p.ip)
            .sort()
            .join();
          for (const m of modes) {
            const got = (await groupEntries(s, GROUP[m])).join();
            missing = `${s.name} ${m} ${GROUP[m]}: ${got} (want ${want})`;
            if (got !== want) return false;
          }
        }
        return true;
      },
      30_000,
      { intervalMs: 100, explain: evidence },
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; last: ${missing}`);
    });
  }
  const get = (c: Counts, join: string, src: string, tag: string): number => c[`${join}|${src}|${tag}`] ?? 0;

  before(async () => {
    lab = await labUp({ id: testLabId('e'), nodes: ['calico', 'bridge', 'calico'], podsPerNode: 2, mtu: 1500, service: 'kmcast-peers.default.svc.cluster.local' }, { runner });
  });

  after(async () => {
    if (keepLab()) return;
    for (const r of receivers) r.stop();
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
  });

  test('baseline: with --capture off, eth0 joins and eth0 sends reach no other node', async (t) => {
    if (!needRoot(t)) return;
    await startAgents(['--capture', 'off']);
    receivers = await Promise.all(lab.pods.map((p) => Receiver.start(p)));
    // eth0 joins are not announced without the capture: wait for the other three modes only.
    await waitReplicated(['route', 'addr', 'vx0']);
    for (const s of senders()) {
      for (const m of SENDS) await send(s, m, `off-${m}`, allGroups);
      await send(s, 'ucif', 'off-bcast-ucif', [`255.255.255.255:${BCAST_PORT}`]);
      await send(s, 'bind', 'off-bcast-bind', [`255.255.255.255:${BCAST_PORT}`]);
    }
    const counts = await settledCounts(receivers, () => 0);
    for (const s of senders()) {
      for (const r of receivers.filter((x) => x.pod.node !== s.node)) {
        const c = counts.get(r)!;
        // The overlay itself works: without this the zeros below would prove nothing.
        assert.equal(get(c, 'route', s.ip, 'off-route'), N, `${s.name} -> ${r.pod.name}: route/route must cross`);
        for (const m of SENDS) assert.equal(get(c, 'eth0', s.ip, `off-${m}`), 0, `${s.name} -> ${r.pod.name}: eth0 join, ${m} send crossed without the capture`);
        for (const j of JOINS) assert.equal(get(c, j, s.ip, 'off-eth0'), 0, `${s.name} -> ${r.pod.name}: ${j} join, eth0 send crossed without the capture`);
        assert.equal(get(c, 'bcast', s.ip, 'off-bcast-ucif') + get(c, 'bcast', s.ip, 'off-bcast-bind'), 0, `${s.name} -> ${r.pod.name}: broadcast out of eth0 crossed`);
      }
      const same = receivers.find((x) => x.pod.node === s.node && x.pod !== s)!;
      const c = counts.get(same)!;
      t.diagnostic(
        `capture off, ${s.name} (${s.style}) -> same-node ${same.pod.name}: eth0 join got ${SENDS.map((m) => `${m}=${get(c, 'eth0', s.ip, `off-${m}`)}`).join(' ')}; eth0 send reached joins ${JOINS.map((j) => `${j}=${get(c, j, s.ip, 'off-eth0')}`).join(' ')}`,
      );
    }
  });

  test('with the capture: every join x send combination, every other pod, exactly once; broadcast out of eth0 too', async (t) => {
    if (!needRoot(t)) return;
    // SIGTERM keeps vx0 and the receivers' memberships; the new agents pick up the eth0 joins.
    await stopAgents();
    await startAgents([]);
    await waitFor(
      'the capture is installed in every pod',
      async () => {
        for (const p of lab.pods) if (!(await status(p)).capture?.installed) return false;
        return true;
      },
      10_000,
      { intervalMs: 100, explain: evidence },
    );
    await waitReplicated([...JOINS]);
    const st = await status(pod('n3p1'));
    t.diagnostic(`n3p1 groups by interface: ${JSON.stringify(st.groupsByInterface)}`);
    assert.deepEqual(st.groupsByInterface?.eth0, [GROUP.eth0], 'the eth0 join is reported on eth0');
    assert.ok(!st.groupsByInterface?.vx0?.includes(GROUP.eth0), "the agent's own vx0 join for it is not counted as an app's");
    assert.ok(st.localGroups.includes(GROUP.eth0), 'and it is announced');

    const f0 = new Map<string, number>();
    for (const s of senders()) f0.set(s.name, (await status(s)).capture!.forwarded);
    for (const s of senders()) {
      for (const m of SENDS) await send(s, m, `on-${m}`, allGroups);
      await send(s, 'ucif', 'on-bcast-ucif', [`255.255.255.255:${BCAST_PORT}`]);
      await send(s, 'bind', 'on-bcast-bind', [`255.255.255.255:${BCAST_PORT}`]);
    }
    // Per receiver: from each of the senders that is not itself, 3 sends x 4 joins + 2 broadcasts, N each.
    const perSender = (SENDS.length * JOINS.length + 2) * N;
    const counts = await settledCounts(receivers, (r) => senders().filter((s) => s !== r.pod).length * perSender);
    let checked = 0;
    for (const s of senders()) {
      for (const r of receivers.filter((x) => x.pod !== s)) {
        const c = counts.get(r)!;
        const where = `${s.name} (${s.style}) -> ${r.pod.name} (${r.pod.node === s.node ? 'same node' : 'other node'})`;
        for (const m of SENDS)
          for (const j of JOINS) {
            assert.equal(get(c, j, s.ip, `on-${m}`), N, `${where}: join ${j}, send ${m}`);
            checked += 1;
          }
        assert.equal(get(c, 'bcast', s.ip, 'on-bcast-ucif'), N, `${where}: broadcast with IP_UNICAST_IF eth0`);
        assert.equal(get(c, 'bcast', s.ip, 'on-bcast-bind'), N, `${where}: broadcast with SO_BINDTODEVICE eth0`);
      }
      const moved = (await status(s)).capture!.forwarded - f0.get(s.name)!;
      t.diagnostic(`${s.name}: the capture moved ${moved} frames into vx0`);
      // eth0 sends (4 groups) and both broadcasts; IP_MULTICAST_IF by address may pick either device.
      assert.ok(moved >= (JOINS.length + 2) * N, `${s.name}: frames sent out of eth0 were moved (${moved})`);
    }
    t.diagnostic(`${checked} (sender, receiver, join, send) combinations x ${N} datagrams: each exactly once`);
  });

  test('on the wire: a group joined on eth0 (socat ip-add-membership=GROUP:eth0) is 1 copy per receiver, 0 after the leave', async (t) => {
    if (!needRoot(t)) return;
    const sender = pod('n1p1');
    const rx = pod('n3p1');
    await runner.run(['nft', '-f', '-'], {
      netns: sender.netns,
      input: 'table ip kmctest {\n chain out {\n  type filter hook output priority 0; policy accept;\n  udp dport 7471 counter\n }\n}\n',
    });
    const socat = spawnInNetns(rx.netns, [findTool('socat', 'apt-get install socat'), '-u', `UDP4-RECV:${SOCAT_PORT},reuseaddr,ip-add-membership=${SOCAT_GROUP}:eth0`, 'STDOUT']);
    let got = '';
    socat.stdout?.on('data', (b: Buffer) => (got += b.toString()));
    try {
      await waitFor('the sender replicates the socat group to its pod only', async () => (await groupEntries(sender, SOCAT_GROUP)).join() === rx.ip, 5000, { intervalMs: 50, explain: evidence });
      const out0 = await vxlanOut(sender);
      await send(sender, 'eth0', 'sel', [`${SOCAT_GROUP}:${SOCAT_PORT}`]);
      await waitFor('socat got every datagram', async () => got.split('\n').filter((l) => l.startsWith('kmc10 sel')).length >= N, 3000, { intervalMs: 20, explain: evidence }).catch(() => undefined);
      await settle(300);
      assert.equal(got.split('\n').filter((l) => l.startsWith('kmc10 sel')).length, N, 'socat (joined on eth0) receives each datagram once');
      assert.equal((await vxlanOut(sender)) - out0, N, 'one VXLAN copy per datagram for one receiver');
    } finally {
      socat.kill();
    }
    await waitFor('the leave on eth0 removes the entry', async () => (await groupEntries(sender, SOCAT_GROUP)).length === 0, 5000, { intervalMs: 50, explain: evidence });
    assert.ok(!(await status(rx)).localGroups.includes(SOCAT_GROUP), 'the group is no longer announced');
    const out0 = await vxlanOut(sender);
    await send(sender, 'eth0', 'sel-left', [`${SOCAT_GROUP}:${SOCAT_PORT}`]);
    await settle(300);
    assert.equal((await vxlanOut(sender)) - out0, 0, 'no copy after the leave');
  });

  test('drift: the capture chain deleted by hand comes back; a re-created vx0 gets the rule again', async (t) => {
    if (!needRoot(t)) return;
    const s = pod('n1p1');
    await runner.run(['nft', 'delete', 'table', 'netdev', 'kmcast'], { netns: s.netns });
    let t0 = Date.now();
    await waitFor('the capture chain is back', async () => (await captureRule(s))?.forwardTo === 'vx0', 10_000, { intervalMs: 100, explain: evidence });
    t.diagnostic(`chain back ${Date.now() - t0} ms after deletion (resync 2000 ms)`);

    const before = (await new IpClient(runner, s.netns).link('vx0'))!;
    await runner.run(['ip', 'link', 'del', 'vx0'], { netns: s.netns });
    t0 = Date.now();
    await waitFor(
      'vx0 re-created and the rule forwards to it by name',
      async () => {
        const link = await new IpClient(runner, s.netns).link('vx0');
        return link !== undefined && (await captureRule(s))?.forwardTo === 'vx0';
      },
      15_000,
      { intervalMs: 100, explain: evidence },
    );
    t.diagnostic(`vx0 and its capture rule back ${Date.now() - t0} ms after deletion (old mac ${before.mac})`);
    await waitReplicated(['eth0']);
    const others = receivers.filter((r) => r.pod !== s);
    const c0 = new Map<Receiver, Counts>();
    for (const r of others) c0.set(r, await r.counts());
    await send(s, 'eth0', 'drift', [`${GROUP.eth0}:${PORT.eth0}`]);
    const counts = await settledCounts(others, (r) => Object.values(c0.get(r)!).reduce((a, b) => a + b, 0) + N);
    for (const r of others) assert.equal(get(counts.get(r)!, 'eth0', s.ip, 'drift'), N, `${r.pod.name}: eth0 send after vx0 was re-created`);
  });

  test('doctor, unprivileged in the pod: the capture path, and sockets bound to eth0 (python SO_BINDTODEVICE, keepalived interface eth0)', async (t) => {
    if (!needRoot(t)) return;
    const p = pod('n2p2');
    interface Check {
      id: string;
      status: string;
      detail: string;
      fix?: string;
    }
    const doctor = async (): Promise<Map<string, Check>> => {
      // As nobody, without capabilities: what `kubectl exec` into an app container can do.
      const r = await runInNetns(
        p.netns,
        [
          findTool('setpriv', 'util-linux'),
          '--reuid',
          '65534',
          '--regid',
          '65534',
          '--clear-groups',
          '--inh-caps=-all',
          '--bounding-set=-all',
          process.execPath,
          KMCAST_MAIN,
          'doctor',
          '--json',
          '--service',
          lab.spec.service,
        ],
        30_000,
      );
      const checks = (JSON.parse(r.stdout) as { checks: Check[] }).checks;
      return new Map(checks.map((c) => [c.id, c]));
    };
    const before = await doctor();
    assert.equal(before.get('bound-sockets')?.status, 'OK', `before: ${JSON.stringify(before.get('bound-sockets'))}`);
    const cap = before.get('capture');
    assert.equal(cap?.status, 'OK', JSON.stringify(cap));
    assert.match(cap.detail, /netdev egress chain on eth0 moves multicast and broadcast into vx0/);
    assert.ok(cap.detail.includes(`eth0: ${GROUP.eth0}`), `groups per interface: ${cap.detail}`);

    const dir = mkdtempSync(join(tmpdir(), 'kmcast-keepalived-'));
    const conf = join(dir, 'keepalived.conf');
    writeFileSync(conf, 'vrrp_instance kmc {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority 100\n  advert_int 1\n  virtual_ipaddress {\n    10.244.2.200/32\n  }\n}\n');
    const keepalived = spawnInNetns(p.netns, [
      findTool('keepalived', 'apt-get install keepalived'),
      '--dont-fork',
      '--log-console',
      '--vrrp',
      '-f',
      conf,
      '-p',
      join(dir, 'k.pid'),
      '-r',
      join(dir, 'v.pid'),
    ]);
    const bound = spawnInNetns(p.netns, [
      findPython(),
      '-c',
      `import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth0')
s.bind(('0.0.0.0', 7620))
time.sleep(60)`,
    ]);
    try {
      await waitFor(
        'keepalived and the bound socket are listed',
        async () => {
          const ss = (await runInNetns(p.netns, ['ss', '-H', '-a', '-n', '-u', '-w'])).stdout;
          return ss.includes('%eth0:7620') && /:112\s/.test(ss);
        },
        10_000,
        { intervalMs: 100, explain: evidence },
      );
      const after = (await doctor()).get('bound-sockets');
      t.diagnostic(`bound-sockets: ${JSON.stringify(after)}`);
      assert.equal(after?.status, 'WARN');
      assert.match(after.detail, /udp 0\.0\.0\.0%eth0:7620/);
      assert.match(after.fix ?? '', /node mode/);
      bound.kill();
      await waitFor('the bound socket is gone', async () => !(await runInNetns(p.netns, ['ss', '-H', '-a', '-n', '-u'])).stdout.includes('%eth0:7620'), 5000, { intervalMs: 100, explain: evidence });
      // keepalived alone: this kernel lists raw sockets without their device (no raw_diag), so
      // its VRRP socket (protocol 112) is reported as bound to its interface, as keepalived does.
      const vrrp = (await doctor()).get('bound-sockets');
      t.diagnostic(`bound-sockets with keepalived only: ${JSON.stringify(vrrp)}`);
      assert.equal(vrrp?.status, 'WARN');
      assert.match(vrrp.detail, /protocol 112 \(VRRP\)/);
    } finally {
      bound.kill();
      keepalived.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
