/**
 * Sidecar mode, an app joining many groups on eth0: the agent joins each on vx0 for it (the kernel
 * accepts a group's datagrams on vx0 only when someone joined it there). Linux holds at most
 * net.ipv4.igmp_max_memberships (20) groups per socket, so the agent's joins must not share one
 * socket: 50 groups joined on eth0 in one pod all receive from a pod on another node.
 * 2 nodes (calico, bridge) x 1 pod.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp } from '../../src/lab/lab.js';
import type { AgentHandle } from '../../src/lab/process.js';
import { agentsEvidence, findPython, podFetch, runInNetns, settle, spawnInNetns, startAgent, waitFor } from '../../src/lab/process.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const GROUPS = Array.from({ length: 50 }, (_, i) => `239.50.0.${i + 1}`);
const PORT = 7650;
const N = 5;

/**
 * Joins every group on eth0 (by index) from a socket per 10 groups (each under the per-socket
 * limit); one socket bound to the port reads them all (IP_MULTICAST_ALL, the default, lets it hear
 * what the other sockets joined, wherever the datagram arrives: vx0). Counts datagrams per group;
 * prints the counts as JSON when asked ("c\n" on stdin).
 */
const RECEIVER = `
import json, select, socket, struct, sys
port, groups = int(sys.argv[1]), sys.argv[2].split(',')
idx = socket.if_nametoindex('eth0')
reader = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
reader.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
reader.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO
reader.bind(('0.0.0.0', port))
holders = [reader]
for i in range(0, len(groups), 10):
    s = reader if i == 0 else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if s is not reader:
        s.bind(('127.0.0.1', 0))
        holders.append(s)
    for g in groups[i:i + 10]:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4si', socket.inet_aton(g), socket.inet_aton('0.0.0.0'), idx))
socks = [reader]
counts = {}
print('READY', flush=True)
while True:
    r, _, _ = select.select(socks + [sys.stdin], [], [])
    for s in r:
        if s is sys.stdin:
            if not sys.stdin.readline():
                sys.exit(0)
            print(json.dumps(counts), flush=True)
            continue
        data, anc, _, _ = s.recvmsg(2048, 256)
        for level, typ, d in anc:
            if level == socket.IPPROTO_IP and typ == 8:
                g = socket.inet_ntoa(d[8:12])
                counts[g] = counts.get(g, 0) + 1
`;

/** N datagrams to every group, out of eth0 (IP_MULTICAST_IF by index). */
const SENDER = `
import socket, struct, sys, time
port, n, groups = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(',')
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack('4s4si', socket.inet_aton('0.0.0.0'), socket.inet_aton('0.0.0.0'), socket.if_nametoindex('eth0')))
for i in range(n):
    for g in groups:
        s.sendto(b'kmc50 %d' % i, (g, port))
    time.sleep(0.005)
`;

describe('sidecar mode: 50 groups joined on eth0', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  const agents = new Map<string, AgentHandle>();
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  let rx: ChildProcess | undefined;
  let out = '';

  before(async () => {
    lab = await labUp({ id: testLabId('eg'), nodes: ['calico', 'bridge'], podsPerNode: 1, mtu: 1500, service: 'kmcast-peers.default.svc.cluster.local' }, { runner });
  });

  after(async () => {
    if (keepLab()) return;
    rx?.stdin?.end();
    rx?.kill();
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
  });

  async function counts(): Promise<Record<string, number>> {
    const from = out.length;
    rx?.stdin?.write('c\n');
    const line = await waitFor('receiver counts', async () => /^\{.*\}$/m.exec(out.slice(from))?.[0], 3000, { intervalMs: 10 });
    return JSON.parse(line) as Record<string, number>;
  }

  test('every one of 50 groups joined on eth0 receives from the other node, exactly N each', async (t) => {
    if (!needRoot(t)) return;
    const [sender, receiver] = [lab.pods[0]!, lab.pods[1]!] as [LabPod, LabPod];
    for (const p of lab.pods) agents.set(p.name, await startAgent(lab, p, ['--heartbeat-interval', '500', '--resolve-interval', '1000', '--resync-interval', '2000']));
    rx = spawnInNetns(receiver.netns, [findPython(), '-c', RECEIVER, String(PORT), GROUPS.join(',')], { stdin: 'pipe' });
    let err = '';
    rx.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    rx.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    await waitFor(
      'the receiver joined 50 groups on eth0',
      async () => {
        if (rx?.exitCode !== null) throw new Error(`receiver exited: ${err}`);
        return out.includes('READY');
      },
      5000,
      { intervalMs: 20 },
    );
    // The receiver's node announces all 50 (the agent read the eth0 joins), and the sender
    // replicates each to it: the control plane carries every group.
    await waitFor(
      'the sender replicates all 50 groups to the receiver',
      async () => {
        const mdb = await new IpClient(runner, sender.netns).bridge.mdb('vx0');
        return GROUPS.every((g) => mdb.some((e) => e.grp === g && e.dst === receiver.ip));
      },
      30_000,
      { intervalMs: 200, explain: evidence },
    );
    await waitFor(
      'the capture is installed in the sender',
      async () => (JSON.parse((await podFetch(sender, '/status')).body) as { capture?: { installed: boolean } }).capture?.installed === true,
      10_000,
      { intervalMs: 100, explain: evidence },
    );
    const st = JSON.parse((await podFetch(receiver, '/status')).body) as { groupsByInterface?: Record<string, string[]> };
    assert.equal(st.groupsByInterface?.eth0?.length, GROUPS.length, 'the agent sees the 50 eth0 joins');
    const vx0 = (await runInNetns(receiver.netns, ['ip', 'maddress', 'show', 'dev', 'vx0'])).stdout;
    t.diagnostic(`groups the receiver holds on vx0: ${GROUPS.filter((g) => vx0.includes(g)).length} of ${GROUPS.length}`);
    const r = await runInNetns(sender.netns, [findPython(), '-c', SENDER, String(PORT), String(N), GROUPS.join(',')], 20_000);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      `every group has ${N} datagrams`,
      async () => {
        const c = await counts();
        return GROUPS.every((g) => (c[g] ?? 0) >= N);
      },
      5000,
      { intervalMs: 100, explain: async () => `counts ${JSON.stringify(await counts())}` },
    ).catch(() => undefined); // the assertions say what is missing
    await settle(300); // late duplicates would arrive now
    const c = await counts();
    // Baseline: the path works for the first groups (so a zero below is the joins', not the lab's).
    assert.equal(c[GROUPS[0]!], N, `${GROUPS[0]} must receive: ${JSON.stringify(c)}`);
    const missing = GROUPS.filter((g) => c[g] !== N);
    assert.deepEqual(missing, [], `groups without exactly ${N} datagrams: ${missing.map((g) => `${g}=${c[g] ?? 0}`).join(' ')}`);
  });
});
