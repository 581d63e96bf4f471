/**
 * Node mode's hardening, on a 2-node lab (calico, bridge) whose nodes MASQUERADE pod
 * traffic to the underlay (as Flannel's ip-masq or Calico's natOutgoing do): a pod's datagram to
 * another node arrives with its node's IP, which every peer believes.
 *
 * Domain A (VNI 100): n1p1 | n2p1     Domain B (VNI 200): n1p2 | n2p2     No domain: n1p3 | n2p3
 *
 * The attack: a non-member pod (uid 65534, no capability, a plain UDP socket) sends a crafted
 * VXLAN frame with domain B's VNI and a B member's inner source to the other node's overlay port.
 * Proven first: masquerade rewrites the pod's datagram to the node IP (a node listener sees it
 * from the node address). Then: legitimate B traffic flows, the forged frames reach nobody and the
 * sending node counts them as `not_underlay` (status and metric).
 *
 * Then a member pod (unprivileged) joins 20,500 groups on 1,025 sockets: more than one STATE may
 * carry. The agent keeps running and announcing (the lowest groups), /status and the metric say
 * how many were left out.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ExecRunner } from '../../src/iproute2/runner.js';
import { labDown, labUp, masqueradePods, setDnsRecord, setServiceMembers } from '../../src/lab/lab.js';
import { received, receivedAny, sendFromPod, startNodeReceiver, UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { agentsEvidence, findPython, netnsFetch, runInNetns, spawnInNetns, startNodeAgent, waitExit, waitFor } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT, NODE_VXLAN_PORT, podStatusPath } from '../../src/node/api.js';
import type { PodProgramStatus } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE_A = 'kmcast-peers.default.svc.cluster.local';
const SERVICE_B = 'app-b.default.svc.cluster.local';
const G = '239.2.2.2';
const PORT = 7610;
const N = 5;

// argv: target vni innerSrc group port count. A VXLAN frame (flags I, the VNI), inner Ethernet to
// the group's MAC, IPv4 (checksummed) and UDP (no checksum) to group:port, sent from an ordinary
// unprivileged UDP socket.
const FORGE_PY = `
import socket, struct, sys
target, vni, src, grp, port, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
payload = b'forged'
udp = struct.pack('!HHHH', port, port, 8 + len(payload), 0) + payload
g = socket.inet_aton(grp)
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 8, 17, 0, socket.inet_aton(src), g)
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
eth = bytes([1, 0, 0x5e, g[1] & 0x7f, g[2], g[3]]) + bytes.fromhex('02aabbccddee') + b'\\x08\\x00'
frame = struct.pack('!II', 0x08000000, vni << 8) + eth + ip + udp
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(count): s.sendto(frame, (target, ${NODE_VXLAN_PORT}))
print(count, flush=True)
`;

// argv: count. Joins `count` groups 239.10.x.y on eth0, 20 per socket (the kernel's default
// igmp_max_memberships), prints READY and holds them until stdin closes.
const JOIN_MANY_PY = `
import resource, socket, struct, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
idx = socket.if_nametoindex('eth0')
socks = []
for i in range(n):
    if i % 20 == 0:
        socks.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    g = socket.inet_aton('239.10.%d.%d' % (i // 256, i % 256))
    socks[-1].setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4si', g, socket.inet_aton('0.0.0.0'), idx))
print('READY', len(socks), flush=True)
sys.stdin.read()
`;

describe('node mode: pods cannot reach the overlay port or crash the agent', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let keyDir: string;
  const agents: NodeAgentHandle[] = [];
  /** What the agents show, quoted when a wait times out. */
  const evidence = (): Promise<string> => agentsEvidence(agents);
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const A = (): LabPod[] => ['n1p1', 'n2p1'].map(pod);
  const B = (): LabPod[] => ['n1p2', 'n2p2'].map(pod);

  before(async () => {
    lab = await labUp({ id: testLabId('ng'), nodes: ['calico', 'bridge'], podsPerNode: 3, mtu: 1500, service: SERVICE_A }, { runner });
    await setServiceMembers(lab, A().map((p) => p.ip));
    await setDnsRecord(lab, SERVICE_B, B().map((p) => p.ip));
    for (const n of lab.nodes) await masqueradePods(lab, n.index, runner);
    keyDir = mkdtempSync(join(tmpdir(), 'kmcast-guard-key-'));
    writeFileSync(join(keyDir, 'key'), `hex:${randomBytes(32).toString('hex')}\n`);
  });

  after(async () => {
    if (keepLab()) return;
    await Promise.all(agents.map((a) => a.stop('SIGKILL')));
    if (lab) await labDown(runner, { id: lab.spec.id });
    if (keyDir) rmSync(keyDir, { recursive: true, force: true });
  });

  async function status(i: number): Promise<NodeStatus> {
    return JSON.parse((await netnsFetch(lab.nodes[i - 1]!.netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
  }

  async function forge(from: LabPod, to: number, innerSrc: string): Promise<void> {
    const target = lab.nodes[to - 1]!.underlayIp;
    const r = await runInNetns(from.netns, [...UNPRIVILEGED, findPython(), '-c', FORGE_PY, target, '200', innerSrc, G, String(PORT), String(N)], 15_000);
    assert.equal(r.code, 0, `forge from ${from.name}: ${r.stderr}`);
  }

  test('baseline: the lab masquerades pod traffic to the other node', async (t) => {
    if (!needRoot(t)) return;
    const listener = await startNodeReceiver(lab.nodes[1]!.netns, { port: PORT, groups: [], mode: 'none', ifname: 'kmcup' });
    await sendFromPod(pod('n1p3').netns, lab.nodes[1]!.underlayIp, { port: PORT, count: 3, intervalMs: 5 });
    const rep = await listener.stop();
    const to = lab.nodes[1]!.underlayIp;
    assert.equal(received(rep, to, lab.nodes[0]!.underlayIp), 3, `node 2 must see n1p3's datagrams from node 1's address (masquerade): ${JSON.stringify(rep.counts)}`);
  });

  test('agents start; B members are programmed; legitimate B traffic crosses nodes', async (t) => {
    if (!needRoot(t)) return;
    for (const n of lab.nodes) {
      agents.push(await startNodeAgent(lab, n, ['--service', `${SERVICE_A}=100`, '--service', `${SERVICE_B}=200`, '--key-file', join(keyDir, 'key'), '--heartbeat-interval', '500', '--resolve-interval', '1000']));
    }
    await waitFor('every member programmed and both nodes peers of each other', async () => {
      for (const p of [...A(), ...B()]) {
        const r = await netnsFetch(lab.nodes[p.node - 1]!.netns, podStatusPath(p.ip), NODE_HTTP_PORT);
        if (r.status !== 200 || !(JSON.parse(r.body) as PodProgramStatus).programmed) return false;
      }
      for (const i of [1, 2]) if ((await status(i)).allowList.peers < 1) return false;
      return true;
    }, 30_000, { intervalMs: 200, explain: evidence });
    const rx = await startNodeReceiver(pod('n2p2').netns, { port: PORT, groups: [G] });
    await waitFor(`node 1 replicates ${G} to node 2`, async () => {
      const r = await runInNetns(lab.nodes[0]!.netns, ['bridge', 'mdb', 'show', 'dev', 'kmcvx200']);
      return r.stdout.includes(G);
    }, 10_000, { intervalMs: 100, explain: evidence });
    const delivered = async (): Promise<number> => {
      const r = await runInNetns(lab.nodes[1]!.netns, ['nft', 'list', 'chain', 'netdev', 'kmcast-node', 'vx-200']);
      return Number(/packets (\d+)/.exec(r.stdout)?.[1] ?? 0);
    };
    const before = await delivered();
    await sendFromPod(pod('n1p2').netns, G, { port: PORT, count: N, intervalMs: 5 });
    await waitFor(`node 2 delivers ${N} frames of domain B (vx-200 counter from ${before})`, async () => (await delivered()) - before >= N, 10_000, { intervalMs: 50, explain: evidence });
    const rep = await rx.stop();
    assert.equal(received(rep, G, pod('n1p2').ip), N, `n2p2 must get n1p2's ${G}: ${JSON.stringify(rep.counts)}`);
  });

  for (const [attacker, target, victim, src] of [
    ['n1p3', 2, 'n2p2', 'n1p2'],
    ['n2p3', 1, 'n1p2', 'n2p2'],
  ] as const) {
    test(`a forged VXLAN frame from non-member ${attacker} reaches no member on node ${target} and is counted`, async (t) => {
      if (!needRoot(t)) return;
      const from = pod(attacker);
      const before = (await status(from.node)).allowList.dropped?.not_underlay ?? 0;
      const rx = await startNodeReceiver(pod(victim).netns, { port: PORT, groups: [G] });
      await forge(from, target, pod(src).ip);
      // The drop is counted on the sending node: wait for it (or time out with what we saw).
      let seen = before;
      const counted = await waitFor(`node ${from.node} counts the forged frames as not_underlay`, async () => {
        seen = (await status(from.node)).allowList.dropped?.not_underlay ?? 0;
        return seen - before >= N ? seen : undefined;
      }, 8_000, { intervalMs: 200, explain: evidence }).catch(() => undefined);
      const rep = await rx.stop();
      assert.equal(receivedAny(rep, G), 0, `${victim} must get none of ${attacker}'s forged ${G} (inner source ${src}): ${JSON.stringify(rep.counts)}`);
      assert.ok(counted !== undefined, `node ${from.node} /status allowList.dropped.not_underlay went ${before} -> ${seen}, want +${N}`);
      const metrics = (await netnsFetch(lab.nodes[from.node - 1]!.netns, '/metrics', NODE_HTTP_PORT)).body;
      assert.match(metrics, /kmcast_node_allowlist_dropped_packets\{reason="not_underlay"\} [1-9]/, 'the metric counts them');
    });
  }

  test('a member joining 20,500 groups: the agent survives, announces what fits, and says what it left out', async (t) => {
    if (!needRoot(t)) return;
    const member = pod('n1p1');
    const agent = agents[0]!;
    const joiner = spawnInNetns(member.netns, [...UNPRIVILEGED, findPython(), '-c', JOIN_MANY_PY, '20500'], { stdin: 'pipe' });
    let out = '';
    let err = '';
    joiner.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    joiner.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    try {
      await waitFor(`n1p1 holds 20,500 groups on 1,025 sockets (${err.trim()})`, async () => out.includes('READY 1025'), 60_000, { intervalMs: 100, explain: evidence });
      let seen: NodeStatus | undefined;
      await waitFor('node 1 /status shows domain A\'s unannounced groups', async () => {
        if (agent.child.exitCode !== null) throw new Error(`the node agent exited with ${agent.child.exitCode} (log: ${agent.logFile})`);
        seen = await status(1);
        return (seen.domains.find((d) => d.vni === 100)?.unannouncedGroups ?? 0) > 0;
      }, 30_000, { intervalMs: 250, explain: evidence });
      const cut = seen!.domains.find((d) => d.vni === 100)!.unannouncedGroups!;
      assert.ok(cut > 0 && cut < 20_500, `some groups announced, the rest counted: ${cut}`);
      // Several heartbeats later it is still alive and still ready.
      const peerSeen = async (): Promise<string | null | undefined> => (await status(2)).domains.find((d) => d.vni === 100)!.peers.find((p) => p.ip === lab.nodes[0]!.underlayIp)?.lastSeen;
      const seenAt = async (): Promise<number> => Date.parse((await peerSeen()) ?? '') || 0;
      const first = await seenAt();
      await waitFor('node 2 hears STATEs from node 1 for three more heartbeats', async () => (await seenAt()) >= first + 1500, 15_000, { intervalMs: 250, explain: evidence });
      assert.equal(agent.child.exitCode, null, `the node agent is still running (log: ${agent.logFile})`);
      assert.equal((await netnsFetch(lab.nodes[0]!.netns, '/readyz', NODE_HTTP_PORT)).status, 200);
      const metrics = (await netnsFetch(lab.nodes[0]!.netns, '/metrics', NODE_HTTP_PORT)).body;
      const m = new RegExp(`kmcast_node_unannounced_groups\\{domain="${SERVICE_A.replaceAll('.', '\\.')}"\\} (\\d+)`).exec(metrics);
      assert.equal(Number(m?.[1]), cut, `the metric counts the same groups: ${m?.[0] ?? 'missing'}`);
    } finally {
      joiner.stdin?.end();
      await waitExit(joiner, 5000);
    }
  });
});
