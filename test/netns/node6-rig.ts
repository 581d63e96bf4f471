/**
 * What the node-mode IPv6 tests share (dual-stack and IPv6-only labs, the same layout): the node
 * agents and the pods' IPv6 receivers, their status, the sending round and its exactly-once
 * check, one VXLAN copy per member node on the wire, the spoof counters and the IPv6 unicast
 * check. Each test keeps its own lab, agent flags, sources and assertions.
 *
 * Domain A (VNI 100): n1p1 | n2p1 n2p2 | n3p1       Domain B (VNI 200): n3p2       No domain: n1p2
 */
import assert from 'node:assert/strict';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { startCapture } from '../../src/lab/capture.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { agentsEvidence, netnsFetch, settle, startNodeAgent, waitFor, waitPing } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import { receivedTagged, sendMcast6, startMcast6Receiver, tcpExchange } from '../../src/lab/traffic6.js';
import type { Datagram6, Mcast6Receiver } from '../../src/lab/traffic6.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT, podStatusPath } from '../../src/node/api.js';
import type { PodProgramStatus } from '../../src/node/api.js';
import { parseRuleset } from '../../src/node/nft.js';
import type { NodeStatus } from '../../src/node/status-types.js';

export const SERVICE_A = 'kmcast-peers.default.svc.cluster.local';
export const SERVICE_B = 'app-b.default.svc.cluster.local';
export const G6 = 'ff05::1:3';
export const LL6 = 'ff02::fb';
/** A routable group nobody joins: --unregistered drop (the default) sends it to no node. */
export const UNJOINED6 = 'ff05::1:99';
export const DEV_A = 'kmcvx100';
/** Over every pod MTU: the sender's kernel fragments it. */
export const BIG = 3000;

export interface Node6RigOptions {
  readonly lab: () => Lab;
  /** A pod's IPv6 address: `ip6` on a dual-stack lab, `ip` on an IPv6-only one. */
  readonly ip6: (p: LabPod) => string;
  readonly port: number;
}

export function node6Rig(o: Node6RigOptions) {
  const runner = new ExecRunner();
  const agents = new Map<number, NodeAgentHandle>();
  const receivers = new Map<string, Mcast6Receiver>();
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const pod = (name: string): LabPod => o.lab().pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => o.lab().nodes.find((n) => n.index === i)!;
  const A = (): LabPod[] => ['n1p1', 'n2p1', 'n2p2', 'n3p1'].map(pod);
  const OUTSIDE = (): LabPod[] => ['n1p2', 'n3p2'].map(pod);

  /** IPv6 receivers of G6 and LL6 in every pod of domain A and outside it, unprivileged. */
  async function startReceivers(): Promise<void> {
    await stopReceivers();
    receivers.clear();
    for (const p of [...A(), ...OUTSIDE()]) receivers.set(p.name, await startMcast6Receiver(p, { groups: [G6, LL6], port: o.port, as: UNPRIVILEGED }));
  }

  async function stopReceivers(): Promise<void> {
    await Promise.all([...receivers.values()].map((r) => r.stop().catch(() => [])));
  }

  /** A node agent on every node; every member of A programmed. */
  async function startAgents(args: readonly string[]): Promise<void> {
    for (const n of o.lab().nodes) agents.set(n.index, await startNodeAgent(o.lab(), n, [...args]));
    for (const p of A()) await untilProgrammed(p);
  }

  async function untilProgrammed(p: LabPod): Promise<void> {
    await waitFor(`${p.name} programmed`, async () => (await podProgram(p))?.programmed === true, 30_000, { intervalMs: 200, explain: evidence });
  }

  async function stopAgents(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    await Promise.all([...agents.values()].map((a) => a.stop(signal)));
    agents.clear();
  }

  /** What `p` received of the datagrams whose payload starts with `tag` (long payloads cut, for messages). */
  const got = (p: LabPod, tag: string): Datagram6[] => receivedTagged(receivers.get(p.name)!, tag);

  /** `group big|small` of each datagram `p` got of `tag`, sorted. */
  const kinds = (p: LabPod, tag: string): string[] =>
    got(p, tag)
      .map((d) => `${d.dst} ${d.data.includes(' big ') ? 'big' : 'small'}`)
      .sort();

  async function podProgram(p: LabPod): Promise<PodProgramStatus | undefined> {
    const r = await netnsFetch(node(p.node).netns, podStatusPath(p.ip), NODE_HTTP_PORT);
    return r.status === 200 ? (JSON.parse(r.body) as PodProgramStatus) : undefined;
  }

  async function nodeStatus(i: number): Promise<NodeStatus> {
    return JSON.parse((await netnsFetch(node(i).netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
  }

  async function mdbDsts(i: number, group: string): Promise<string[]> {
    return (await new IpClient(runner, node(i).netns).bridge.mdb(DEV_A))
      .filter((e) => e.grp === group)
      .map((e) => e.dst!)
      .sort();
  }

  /** One small and one fragmented datagram to each group from `sender`, naming eth0, tagged `tag`. */
  async function sendRound(sender: LabPod, tag: string): Promise<void> {
    for (const g of [G6, LL6]) {
      await sendMcast6(sender, g, `${tag} ${g} small`, { port: o.port, as: UNPRIVILEGED });
      await sendMcast6(sender, g, `${tag} ${g} big `.padEnd(BIG, 'x'), { port: o.port, as: UNPRIVILEGED });
    }
  }

  /** Without agents: a round from n1p1 reaches no other pod. */
  async function assertNothingCrosses(tag: string): Promise<void> {
    await sendRound(pod('n1p1'), tag);
    // Nothing is expected anywhere: give the datagrams the time a crossing one takes.
    await settle(1500);
    for (const p of [...A(), ...OUTSIDE()].filter((x) => x.name !== 'n1p1')) assert.deepEqual(got(p, tag), [], `${p.name} heard n1p1 without kmcast`);
  }

  /**
   * A round from `sender`: every other member of A gets each datagram exactly once (fragmented ones
   * whole), G6 from the sender's IPv6 address and LL6 from its link-local one; nobody else any.
   */
  async function assertRound(sender: LabPod, tag: string): Promise<void> {
    await sendRound(sender, tag);
    const want = A().filter((p) => p !== sender);
    for (const p of want) {
      await receivers.get(p.name)!.waitUntil(`${p.name} hears ${tag} (4 datagrams)`, (all) => all.filter((d) => d.data.startsWith(tag)).length >= 4, 15_000);
    }
    // A second copy (a flood beside the MDB entry) would arrive now.
    await settle(1000);
    for (const p of want) {
      assert.deepEqual(kinds(p, tag), [`${G6} big`, `${G6} small`, `${LL6} big`, `${LL6} small`].sort(), `${p.name}: each datagram exactly once (fragmented ones whole)`);
      for (const d of got(p, tag).filter((x) => x.dst === G6)) assert.equal(d.src, o.ip6(sender), `${p.name}: ${G6} from the sender's IPv6 address`);
      for (const d of got(p, tag).filter((x) => x.dst === LL6)) assert.match(d.src, /^fe80:/, `${p.name}: ${LL6} from the sender's link-local address`);
    }
    for (const p of OUTSIDE()) assert.deepEqual(got(p, tag), [], `${p.name} is no member of domain A and hears nothing`);
  }

  /**
   * On node 1's uplink (`filter`: tcpdump's, for the VXLAN port): one copy per datagram per member
   * node for a routable and a link-local group, none for a group nobody joined (sent to the
   * IPv6 catch-all, whose remote is `blackhole`).
   */
  async function assertWireCopies(filter: readonly string[], vxlanPort: number, blackhole: string): Promise<void> {
    const cap = await startCapture(node(1).netns, 'kmcup', filter);
    try {
      await sendMcast6(pod('n1p1'), G6, 'wire routable', { port: o.port, as: UNPRIVILEGED });
      assert.deepEqual(
        (await new IpClient(runner, node(1).netns).bridge.mdb(DEV_A)).filter((e) => e.grp === '::').map((e) => e.dst),
        [blackhole],
        'the IPv6 catch-all of --unregistered drop',
      );
      await sendMcast6(pod('n1p1'), UNJOINED6, 'wire unjoined', { port: o.port, as: UNPRIVILEGED });
      await sendMcast6(pod('n1p1'), LL6, 'wire linklocal', { port: o.port, as: UNPRIVILEGED });
      for (const p of A().filter((x) => x.name !== 'n1p1')) {
        await receivers.get(p.name)!.waitUntil(`${p.name} hears the wire round`, (all) => all.filter((d) => d.data.startsWith('wire')).length >= 2, 10_000);
      }
      await settle(500);
    } finally {
      const lines = await cap.stop();
      const to = (ip: string): number => lines.filter((l) => l.includes(` > ${ip}.${vxlanPort}:`)).length;
      assert.deepEqual([to(node(2).underlayIp), to(node(3).underlayIp), lines.length], [2, 2, 4], `one copy per datagram per member node:\n${lines.join('\n')}`);
    }
  }

  /** Datagrams node `i`'s capture chains dropped as spoofed (another source than the member's). */
  async function spoofed(i: number): Promise<number> {
    const dump = (await runner.run(['nft', '-j', 'list', 'table', 'netdev', 'kmcast-node'], { netns: node(i).netns })).stdout;
    return [...parseRuleset(dump).values()].reduce((n, c) => n + c.spoofed, 0);
  }

  /** ping6 and a 100 kB IPv6 TCP exchange between pods on different nodes (and both node styles). */
  async function unicastWorks(when: string): Promise<void> {
    for (const [a, b] of [
      ['n1p1', 'n3p1'],
      ['n3p1', 'n2p2'],
      ['n1p2', 'n2p1'],
    ] as const) {
      await waitPing(pod(a), o.ip6(pod(b)));
      const r = await tcpExchange(pod(a), pod(b), o.ip6(pod(b)), { bytes: 100_000 });
      assert.deepEqual(r, { bytes: 100_000, peer: o.ip6(pod(a)) }, `${a} -> ${b} over IPv6 ${when}`);
    }
  }

  return {
    runner,
    agents,
    receivers,
    evidence,
    pod,
    node,
    A,
    OUTSIDE,
    startReceivers,
    stopReceivers,
    startAgents,
    untilProgrammed,
    stopAgents,
    got,
    kinds,
    podProgram,
    nodeStatus,
    mdbDsts,
    sendRound,
    assertNothingCrosses,
    assertRound,
    assertWireCopies,
    spoofed,
    unicastWorks,
  };
}
