/**
 * What the sidecar IPv6 tests share (dual-stack and IPv6-only labs): the agents of domain A (the
 * lab service) and domain B (its own service and VNI), one unprivileged receiver per pod, and
 * the waits and reads on them. Each test keeps its own lab, senders and assertions: the sources,
 * send paths and MTUs differ between the two.
 */
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import type { AgentHandle } from '../../src/lab/process.js';
import { agentsEvidence, podFetch, startAgent, waitFor } from '../../src/lab/process.js';
import { startMcast6Receiver } from '../../src/lab/traffic6.js';
import type { Datagram6, Mcast6Receiver } from '../../src/lab/traffic6.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import type { AgentStatus } from '../../src/sidecar/status-types.js';

export interface Sidecar6RigOptions {
  readonly lab: () => Lab;
  /** Domain A's members and domain B's (its own service and VNI 4343). */
  readonly A: () => LabPod[];
  readonly B: () => LabPod[];
  readonly serviceB: string;
  /** The groups each pod's receiver joins. */
  readonly groupsOf: (p: LabPod) => string[];
  /** The routable group whose MDB entries waitReplicated checks. */
  readonly group: string;
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

  /** What `p` received of the datagrams whose payload starts with `tag` (payloads cut, for messages). */
  const got = (p: LabPod, tag: string): Datagram6[] =>
    receivers
      .get(p.name)!
      .received()
      .filter((d) => d.data.startsWith(tag))
      .map((d) => ({ ...d, data: d.data.length > 100 ? `${d.data.slice(0, 40)}... (${d.data.length})` : d.data }));

  return { runner, agents, receivers, evidence, startReceivers, stopReceivers, startAgents, stopAgents, status, mdbDsts, waitReplicated, got };
}
