/**
 * What the sidecar IPv6 tests share (dual-stack and IPv6-only labs): the agents of domain A (the
 * lab service) and domain B (its own service and VNI), one unprivileged receiver per pod, and
 * the waits and reads on them. Each test keeps its own lab, senders and assertions: the sources,
 * send paths and MTUs differ between the two.
 */
import assert from 'node:assert/strict';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import type { AgentHandle } from '../../src/lab/process.js';
import { agentsEvidence, podFetch, settle, startAgent, waitFor, waitPing } from '../../src/lab/process.js';
import { receivedTagged, startMcast6Receiver, tcpExchange } from '../../src/lab/traffic6.js';
import type { Datagram6, Mcast6Receiver } from '../../src/lab/traffic6.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import type { AgentStatus } from '../../src/sidecar/status-types.js';

export interface Sidecar6RigOptions {
  readonly lab: () => Lab;
  /** Domain A's members and domain B's (its own service and VNI 4343). */
  readonly A: () => LabPod[];
  readonly B: () => LabPod[];
  /** The pods of no domain. */
  readonly NONE: () => LabPod[];
  readonly serviceB: string;
  /** A pod's IPv6 address: `ip6` on a dual-stack lab, `ip` on an IPv6-only one. */
  readonly ip6: (p: LabPod) => string;
  /** The groups each pod's receiver joins. */
  readonly groupsOf: (p: LabPod) => string[];
  /** The routable group whose MDB entries waitReplicated checks. */
  readonly group: string;
  /** The link-local group the pods also send to. */
  readonly linkLocalGroup: string;
  readonly port: number;
  readonly agentArgs: readonly string[];
}

export function sidecar6Rig(o: Sidecar6RigOptions) {
  const runner = new ExecRunner();
  const agents = new Map<string, AgentHandle>();
  const receivers = new Map<string, Mcast6Receiver>();
  const evidence = (): Promise<string> => agentsEvidence(agents.values());

  async function startReceivers(): Promise<void> {
    await Promise.all([...receivers.values()].map((r) => r.stop().catch(() => [])));
    receivers.clear();
    for (const p of o.lab().pods) receivers.set(p.name, await startMcast6Receiver(p, { groups: o.groupsOf(p), port: o.port, as: UNPRIVILEGED }));
  }

  async function startAgents(): Promise<void> {
    const started = await Promise.all([
      ...o.A().map(async (p) => [p.name, await startAgent(o.lab(), p, o.agentArgs)] as const),
      ...o.B().map(async (p) => [p.name, await startAgent(o.lab(), p, [...o.agentArgs, '--service', o.serviceB, '--vni', '4343'])] as const),
    ]);
    for (const [name, h] of started) agents.set(name, h);
  }

  async function stopAgents(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    await Promise.all([...agents.values()].map((a) => a.stop(signal)));
    agents.clear();
  }

  async function stopReceivers(): Promise<void> {
    await Promise.all([...receivers.values()].map((r) => r.stop().catch(() => [])));
  }

  async function status(p: LabPod): Promise<AgentStatus> {
    return JSON.parse((await podFetch(p, '/status')).body) as AgentStatus;
  }

  async function mdbDsts(p: LabPod, group: string): Promise<string[]> {
    return (await new IpClient(runner, p.netns).bridge.mdb('vx0'))
      .filter((e) => e.grp === group)
      .map((e) => e.dst!)
      .sort();
  }

  /** Every member replicates the group to exactly the other members that joined it, by MDB entries to their underlay addresses (`ip`). */
  async function waitReplicated(): Promise<void> {
    let last = '';
    await waitFor(
      `members replicate ${o.group} to the members that joined it`,
      async () => {
        for (const s of o.A()) {
          const want = o
            .A()
            .filter((p) => p !== s && o.groupsOf(p).includes(o.group))
            .map((p) => p.ip)
            .sort()
            .join();
          const have = (await mdbDsts(s, o.group)).join();
          last = `${s.name}: ${have} (want ${want})`;
          if (have !== want) return false;
        }
        return true;
      },
      30_000,
      { intervalMs: 200, explain: async () => `last: ${last}\n${await evidence()}` },
    );
  }

  /** What `p` received of the datagrams whose payload starts with `tag` (long payloads cut, for messages). */
  const got = (p: LabPod, tag: string): Datagram6[] => receivedTagged(receivers.get(p.name)!, tag);

  /** What a round sent per group (`labels`, one datagram each), how to tell them, and where the link-local ones come from. */
  interface RoundKinds {
    readonly labels: readonly string[];
    readonly labelOf: (d: Datagram6) => string;
    readonly ll6Source: (label: string) => string | RegExp;
    /** The size of every datagram whose label is not `small`: it must arrive whole. */
    readonly bigSize: number;
  }

  /**
   * Every member of A but the sender gets each datagram of its groups exactly once, whole; the
   * routable group from the sender's IPv6 address, the link-local one from `ll6Source`; nobody
   * in B or in no domain gets anything.
   */
  async function assertRound(sender: LabPod, tag: string, k: RoundKinds): Promise<void> {
    const want = o.A().filter((p) => p !== sender);
    const expected = (p: LabPod): string[] => o.groupsOf(p).flatMap((g) => k.labels.map((l) => `${g} ${l}`));
    for (const p of want) {
      const n = expected(p).length;
      await receivers.get(p.name)!.waitUntil(`${p.name} hears ${tag} (${n} datagrams)`, (all) => all.filter((d) => d.data.startsWith(`${tag} `)).length >= n, 15_000);
    }
    // A second copy (a flood beside the MDB entry, the bridge node beside the capture) would arrive now.
    await settle(500);
    for (const p of want) {
      const mine = got(p, `${tag} `);
      assert.deepEqual(mine.map((d) => `${d.dst} ${k.labelOf(d)}`).sort(), expected(p).sort(), `${p.name}: each datagram of its groups exactly once, fragmented ones whole`);
      for (const d of mine.filter((x) => x.dst === o.group)) assert.equal(d.src, o.ip6(sender), `${p.name}: ${o.group} from ${sender.name}'s IPv6 address`);
      for (const d of mine.filter((x) => x.dst === o.linkLocalGroup)) {
        const source = k.ll6Source(k.labelOf(d));
        if (typeof source === 'string') assert.equal(d.src, source, `${p.name}: ${o.linkLocalGroup} (${k.labelOf(d)}) source`);
        else assert.match(d.src, source, `${p.name}: ${o.linkLocalGroup} (${k.labelOf(d)}) source`);
      }
      assert.ok(
        mine.filter((x) => k.labelOf(x) !== 'small').every((x) => x.data.endsWith(`(${k.bigSize})`)),
        `${p.name}: the fragmented datagrams arrive whole: ${JSON.stringify(mine.map((x) => x.data))}`,
      );
    }
    for (const p of [...o.B(), ...o.NONE()]) assert.deepEqual(got(p, `${tag} `), [], `${p.name} is in no domain A and hears nothing`);
  }

  /** ping6 and a 100 kB IPv6 TCP exchange between pods on different nodes (both node styles). */
  async function unicastWorks(when: string): Promise<void> {
    const pod = (name: string): LabPod => o.lab().pods.find((p) => p.name === name)!;
    for (const [a, b] of [
      ['n1p1', 'n2p1'],
      ['n2p2', 'n3p1'],
      ['n3p2', 'n1p3'],
    ] as const) {
      await waitPing(pod(a), o.ip6(pod(b)));
      const r = await tcpExchange(pod(a), pod(b), o.ip6(pod(b)), { bytes: 100_000, port: 7617 });
      assert.deepEqual(r, { bytes: 100_000, peer: o.ip6(pod(a)) }, `${a} -> ${b} over IPv6 ${when}`);
    }
  }

  return { runner, agents, receivers, evidence, startReceivers, stopReceivers, startAgents, stopAgents, status, mdbDsts, waitReplicated, got, assertRound, unicastWorks };
}
