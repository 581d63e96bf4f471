/**
 * What the gateway IPv6 tests share (dual-stack and IPv6-only labs): a receiving round over the
 * members and the LAN host, and the node agents' status. Each test keeps its own lab, groups,
 * senders and assertions.
 */
import assert from 'node:assert/strict';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { netnsFetch, settle, waitFor } from '../../src/lab/process.js';
import { startMcast6Receiver } from '../../src/lab/traffic6.js';
import type { Datagram6, Mcast6Receiver } from '../../src/lab/traffic6.js';
import type { LabNode, LabPod } from '../../src/lab/types.js';
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
