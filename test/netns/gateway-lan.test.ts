/**
 * The gateway's LAN interface stays a normal interface for everything it does not carry: a
 * 1-node lab (calico) with one member pod, a LAN with one host, the gateway on node 1 carrying
 * 224.0.0.251 in. Proven first: the LAN host's datagrams to the group reach the pod. Then ARP from
 * the LAN host is answered by the node and never reaches the pod; IPv6 (ping to the node's
 * link-local address) and TCP to the node work; none of the host's non-IPv4 frames reach the pod.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { addLan } from '../../src/lab/lan.js';
import { received, sendFromPod, startNodeReceiver } from '../../src/lab/node-apps.js';
import type { NodeReceiverReport } from '../../src/lab/node-apps.js';
import { agentEvidence, findPython, netnsFetch, runInNetns, spawnInNetns, startNodeAgent, waitExit, waitFor } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabLan, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = 'kmcast-peers.default.svc.cluster.local';
const MDNS = '224.0.0.251';
const PORT = 7720;
const TCP_PORT = 7721;

describe("gateway: ARP, IPv6 and TCP on the LAN interface are the node's, never the domain's", { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let lan: LabLan;
  let agent: NodeAgentHandle | undefined;
  /** What the agent shows, quoted when a wait times out. */
  const evidence = async (): Promise<string> => (agent ? await agentEvidence(agent) : 'no agent started');
  let capture: ChildProcess | undefined;
  let captured = '';
  const member = (): LabPod => lab.pods[0]!;
  const host = (): LabLan['hosts'][number] => lan.hosts[0]!;
  const nodeLan = (): LabLan['nodes'][number] => lan.nodes[0]!;

  before(async () => {
    lab = await labUp({ id: testLabId('gl'), nodes: ['calico'], podsPerNode: 1, mtu: 1500, service: SERVICE }, { runner });
    await setServiceMembers(lab, [member().ip]);
    lan = await addLan(lab, runner, { nodes: [1], hosts: 1 });
    agent = await startNodeAgent(lab, lab.nodes[0]!, [
      '--service',
      `${SERVICE}=100`,
      '--heartbeat-interval',
      '200',
      '--resolve-interval',
      '500',
      '--gateway-interface',
      nodeLan().ifname,
      '--gateway-group',
      `${MDNS}=in`,
    ]);
    await waitFor(
      'the member programmed and the gateway active',
      async () => {
        const r = await netnsFetch(lab.nodes[0]!.netns, '/status', NODE_HTTP_PORT).catch(() => undefined);
        if (r?.status !== 200) return false;
        const s = JSON.parse(r.body) as NodeStatus;
        return s.ready && s.domains[0]!.localMembers.every((m) => m.programmed) && s.gateway?.active === true && s.gateway.table.installed;
      },
      30_000,
      { intervalMs: 100, explain: evidence },
    );
  });

  after(async () => {
    capture?.kill('SIGTERM');
    if (capture) await waitExit(capture, 1000);
    if (keepLab()) return;
    await agent?.stop('SIGKILL');
    if (lab) await labDown(runner, { id: lab.spec.id });
  });

  async function hostMac(): Promise<string> {
    const r = await runInNetns(host().netns, ['cat', `/sys/class/net/${host().ifname}/address`]);
    return r.stdout.trim();
  }

  test("baseline: the LAN host's datagrams to the inbound group reach the member pod", async (t) => {
    if (!needRoot(t)) return;
    // Retried: the gateway may still be joining the group on its LAN interface.
    let rep: NodeReceiverReport = { counts: {}, ttls: {} };
    for (let attempt = 0; attempt < 20 && received(rep, MDNS, host().ip) === 0; attempt++) {
      const again = await startNodeReceiver(member().netns, { port: PORT, groups: [MDNS] });
      await sendFromPod(host().netns, MDNS, { port: PORT, count: 5, intervalMs: 20, ifname: host().ifname });
      rep = await again.stop();
    }
    assert.ok(received(rep, MDNS, host().ip) > 0, `the member pod must hear the LAN host on ${MDNS}: ${JSON.stringify(rep.counts)}`);
  });

  test('ARP from the LAN host is answered by the node; IPv6 and TCP reach the node; the pod sees none of it', async (t) => {
    if (!needRoot(t)) return;
    const mac = await hostMac();
    // Every frame from the LAN host's MAC that is not IPv4 and reaches the pod's eth0.
    capture = spawnInNetns(member().netns, ['tcpdump', '-i', 'eth0', '-n', '-l', '-e', '-Q', 'in', `ether src ${mac} and not ip`], { stdin: 'ignore' });
    capture.stdout?.on('data', (b: Buffer) => (captured += b.toString()));
    let tcpdumpErr = '';
    capture.stderr?.on('data', (b: Buffer) => (tcpdumpErr += b.toString()));
    await waitFor(`tcpdump listening in the pod (${tcpdumpErr.trim()})`, async () => tcpdumpErr.includes('listening on'), 10_000, { intervalMs: 50, explain: evidence });

    // ARP, then TCP over IPv4: from a flushed neighbour table, the node must answer the ARP itself.
    await runInNetns(host().netns, ['ip', 'neigh', 'flush', 'dev', host().ifname]);
    const ll = /inet6 (fe80::[0-9a-f:]+)\//.exec((await runInNetns(lab.nodes[0]!.netns, ['ip', '-6', 'addr', 'show', 'dev', nodeLan().ifname])).stdout)?.[1];
    assert.ok(ll, 'the node has an IPv6 link-local address on its LAN interface');
    // Duplicate address detection must be over on both ends: a tentative link-local address
    // cannot be connected from (EADDRNOTAVAIL) or to, whatever the gateway does.
    const settled = async (netns: string, dev: string): Promise<boolean> => {
      const out = (await runInNetns(netns, ['ip', '-6', 'addr', 'show', 'dev', dev, 'scope', 'link'])).stdout;
      return out.includes('inet6 fe80:') && !/tentative/.test(out);
    };
    await waitFor(
      'both link-local addresses past duplicate address detection',
      async () => (await settled(lab.nodes[0]!.netns, nodeLan().ifname)) && (await settled(host().netns, host().ifname)),
      10_000,
      { intervalMs: 100, explain: evidence },
    );
    const servers = [
      spawnInNetns(lab.nodes[0]!.netns, ['socat', `TCP4-LISTEN:${TCP_PORT},bind=${nodeLan().ip},reuseaddr,fork`, 'SYSTEM:echo kmcast-tcp4'], { stdin: 'ignore' }),
      spawnInNetns(lab.nodes[0]!.netns, ['socat', `TCP6-LISTEN:${TCP_PORT + 1},reuseaddr,fork`, 'SYSTEM:echo kmcast-tcp6'], { stdin: 'ignore' }),
    ];
    try {
      // Retried only while the listener is not up yet (refused); a timeout is the answer.
      const client = `import socket,sys,time
for i in range(50):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); print(s.recv(100).decode().strip()); break
    except ConnectionRefusedError: time.sleep(0.1)`;
      const v4 = await runInNetns(host().netns, [findPython(), '-c', client, nodeLan().ip, String(TCP_PORT)], 15_000);
      const neigh = (await runInNetns(host().netns, ['ip', 'neigh', 'show', nodeLan().ip, 'dev', host().ifname])).stdout.trim();
      assert.match(neigh, /lladdr/, `the LAN host resolved the node's address by ARP: ${neigh || 'no entry'}`);
      assert.equal(v4.stdout.trim(), 'kmcast-tcp4', `TCP over IPv4 from the LAN host to the node: ${v4.stderr}`);
      const v6 = await runInNetns(host().netns, [findPython(), '-c', client, `${ll}%${host().ifname}`, String(TCP_PORT + 1)], 15_000);
      assert.equal(v6.stdout.trim(), 'kmcast-tcp6', `TCP over IPv6 (link-local, neighbour discovery) from the LAN host to the node: ${v6.stderr}`);
    } finally {
      for (const server of servers) {
        server.kill('SIGTERM');
        await waitExit(server, 1000);
      }
    }

    // The pod saw none of the host's ARP or IPv6 (read after the node's answers proved traffic flowed).
    capture.kill('SIGINT');
    await waitExit(capture, 2000);
    capture = undefined;
    const lines = captured.split('\n').filter((l) => l.trim());
    assert.deepEqual(lines, [], 'no ARP or IPv6 frame from the LAN host reached the member pod');
  });
});
