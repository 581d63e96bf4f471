/**
 * What the gateway IPv6 tests share (dual-stack and IPv6-only labs, the same layout): the node
 * agents and the LAN, a receiving round over the members and the LAN host, the agents' status,
 * the MDB entries and what the LAN switch learned by MLD. Each test keeps its own lab, groups,
 * senders and assertions.
 *
 * Members of the domain: n1p1 | n2p1 | n3p1; node 1 is on the LAN (kmclan) with host h1.
 */
import assert from 'node:assert/strict';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown } from '../../src/lab/lab.js';
import { addLan, lanMemberships } from '../../src/lab/lan.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { agentsEvidence, netnsFetch, settle, startNodeAgent, waitFor } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import { startMcast6Receiver } from '../../src/lab/traffic6.js';
import type { Datagram6, Mcast6Receiver } from '../../src/lab/traffic6.js';
import type { Lab, LabLan, LabLanHost, LabNode, LabPod } from '../../src/lab/types.js';
import { keepLab } from './harness.js';
import type { GatewayStatus } from '../../src/gateway/status-types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';

/** `src>dst payload-start (length)` of each datagram, for messages. */
export const brief = (ds: readonly Datagram6[]): string[] => ds.map((d) => `${d.src}>${d.dst} ${d.data.slice(0, 30)} (${d.data.length})`);

export async function nodeStatus(n: LabNode): Promise<NodeStatus> {
  return JSON.parse((await netnsFetch(n.netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
}

export async function gatewayStatus(n: LabNode): Promise<GatewayStatus> {
  const g = (await nodeStatus(n)).gateway;
  assert.ok(g, `node ${n.index} has no gateway in /status`);
  return g;
}

/** Until every node agent is ready and has programmed every local member. */
export async function untilProgrammed(nodes: readonly LabNode[], evidence: () => Promise<string>): Promise<void> {
  await waitFor(
    'every member programmed',
    async () => {
      for (const n of nodes) {
        const s = await nodeStatus(n).catch(() => undefined);
        if (!s?.ready || s.domains[0]!.localMembers.some((m) => !m.programmed)) return false;
      }
      return true;
    },
    30_000,
    { explain: evidence },
  );
}

export interface RoundWhere {
  /** Member pods: their receivers run unprivileged. */
  readonly members: readonly LabPod[];
  /** The LAN host, as `h1`. */
  readonly host: Pick<LabPod, 'name' | 'netns'>;
  readonly port: number;
  readonly evidence: () => Promise<string>;
}

/** IPv6 receivers in the members and on the LAN host for `groups`; `act`, then what each got of `tag`, once `wait` holds and late copies had time to show. */
export async function round6(
  w: RoundWhere,
  groups: readonly string[],
  tag: string,
  act: () => Promise<void>,
  wait: (got: (where: string) => Datagram6[]) => boolean = () => true,
): Promise<Map<string, Datagram6[]>> {
  const rx = new Map<string, Mcast6Receiver>();
  const out = new Map<string, Datagram6[]>();
  try {
    for (const p of w.members) rx.set(p.name, await startMcast6Receiver(p, { groups, port: w.port, as: UNPRIVILEGED }));
    rx.set('h1', await startMcast6Receiver({ name: 'h1', netns: w.host.netns }, { groups, port: w.port }));
    await act();
    const got = (where: string): Datagram6[] =>
      rx
        .get(where)!
        .received()
        .filter((d) => d.data.startsWith(tag));
    await waitFor(`the round ${tag} arrived`, async () => wait(got), 15_000, {
      intervalMs: 50,
      explain: async () => `${JSON.stringify(Object.fromEntries([...rx.keys()].map((k) => [k, brief(got(k))])))}\n${await w.evidence()}`,
    });
    // What arrived late (a second copy) shows after the time a first copy takes.
    await settle(800);
  } finally {
    for (const [name, r] of rx)
      out.set(
        name,
        (await r.stop()).filter((d) => d.data.startsWith(tag)),
      );
  }
  return out;
}

export const GATEWAY6_SERVICE = 'kmcast-peers.default.svc.cluster.local';

export interface Gateway6LabOptions {
  readonly lab: () => Lab;
  readonly port: number;
}

/** The agents, the LAN and the helpers of a gateway IPv6 test over `o.lab()`. */
export function gateway6Lab(o: Gateway6LabOptions) {
  const runner = new ExecRunner();
  const agents = new Map<number, NodeAgentHandle>();
  let lan: LabLan | undefined;
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const pod = (name: string): LabPod => o.lab().pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => o.lab().nodes.find((n) => n.index === i)!;
  const MEMBERS = (): LabPod[] => ['n1p1', 'n2p1', 'n3p1'].map(pod);
  const theLan = (): LabLan => lan!;
  const host = (): LabLanHost => theLan().hosts[0]!;
  /** The gateway's IPv6 address on the LAN. */
  const gwIp6 = (): string => theLan().nodes[0]!.ip6!;
  /** Every node agent's flags; a gateway adds its own. */
  const base = ['--service', `${GATEWAY6_SERVICE}=100`, '--heartbeat-interval', '200', '--resolve-interval', '500', '--joins-interval', '1000'];

  /** The LAN on node 1 with one host, and a node agent (no gateway yet) on every node, every member programmed. */
  async function setUp(): Promise<void> {
    lan = await addLan(o.lab(), runner, { nodes: [1], hosts: 1 });
    for (const n of o.lab().nodes) agents.set(n.index, await startNodeAgent(o.lab(), n, base));
    await untilProgrammed(o.lab().nodes, evidence);
  }

  async function tearDown(): Promise<void> {
    if (keepLab()) return;
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
    await labDown(runner, { id: o.lab().spec.id });
  }

  const nodeStatusOf = (i: number): Promise<NodeStatus> => nodeStatus(node(i));
  const gatewayStatusOf = (i = 1): Promise<GatewayStatus> => gatewayStatus(node(i));
  const round = (groups: readonly string[], tag: string, act: () => Promise<void>, wait?: (got: (where: string) => Datagram6[]) => boolean): Promise<Map<string, Datagram6[]>> =>
    round6({ members: MEMBERS(), host: host(), port: o.port, evidence }, groups, tag, act, wait);

  async function mdbDsts(i: number, group: string): Promise<string[]> {
    return (await new IpClient(runner, node(i).netns).bridge.mdb('kmcvx100'))
      .filter((e) => e.grp === group)
      .map((e) => e.dst!)
      .sort();
  }

  /** Until node `from` replicates `group` to the nodes `to` (at least). */
  async function untilReplicated(from: number, group: string, to: readonly number[]): Promise<void> {
    const want = to.map((i) => node(i).underlayIp).sort();
    await waitFor(
      `node ${from} replicates ${group} to nodes ${to.join(',')}`,
      async () => {
        const have = await mdbDsts(from, group);
        return want.every((w) => have.includes(w));
      },
      15_000,
      { intervalMs: 100, explain: evidence },
    );
  }

  /** Routable IPv6 groups the LAN switch forwards to a node's port (node 1's by default): what MLD reports taught it. */
  async function switchJoins6(port = theLan().nodes[0]!.port): Promise<string[]> {
    return (await lanMemberships(o.lab(), runner, 6))
      .filter((m) => m.port === port && !m.group.startsWith('ff02:'))
      .map((m) => m.group)
      .sort();
  }

  return {
    runner,
    agents,
    evidence,
    pod,
    node,
    MEMBERS,
    lan: theLan,
    host,
    gwIp6,
    base,
    setUp,
    tearDown,
    nodeStatus: nodeStatusOf,
    gatewayStatus: gatewayStatusOf,
    round,
    mdbDsts,
    untilReplicated,
    switchJoins6,
  };
}
