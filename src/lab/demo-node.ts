/**
 * The node-mode half of `kmcast demo --mode node`: one `kmcast node` agent per node namespace,
 * `kmcast wait` in every pod as the injected init container runs it (uid 65532, no capability,
 * asking the node's IP on port 9471), and the node devices' replication entries to know when
 * every join is through. The pods hold no agent and no VXLAN device.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KmcastError } from '../errors.js';
import { IpClient } from '../kernel/ip.js';
import type { Runner } from '../kernel/runner.js';
import { NODE_HTTP_PORT } from '../node/api.js';
import type { NodeStatus } from '../node/status-types.js';
import { KMCAST_MAIN, netnsFetch, runInNetns, startNodeAgent } from './process.js';
import type { NodeAgentHandle } from './process.js';
import type { Lab } from './types.js';

/** The demo's one domain: the lab Service, on this VNI (device kmcvx100 on every node). */
export const DEMO_NODE_VNI = 100;
export const DEMO_NODE_DEVICE = `kmcvx${DEMO_NODE_VNI}`;
/** What the injected init container's securityContext gives `kmcast wait`. */
export const WAIT_SANDBOX: readonly string[] = ['setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'];

/** The node agent's flags in the demo (the domain, a fresh key, 1 s heartbeats and DNS re-reads). Pure. */
export function demoNodeAgentArgs(service: string, keyFile: string): string[] {
  return ['--service', `${service}=${DEMO_NODE_VNI}`, '--key-file', keyFile, '--heartbeat-interval', '1000', '--resolve-interval', '1000'];
}

/**
 * Writes a fresh shared key into the lab's state dir (removed with the lab) and starts every node's
 * agent, with `extra(node)` flags on top (the gateway's, on its node).
 */
export async function startNodeAgents(lab: Lab, detached: boolean, extra: (node: number) => readonly string[] = () => []): Promise<NodeAgentHandle[]> {
  const keyFile = join(lab.stateDir, 'node.key');
  await writeFile(keyFile, `hex:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const args = demoNodeAgentArgs(lab.spec.service, keyFile);
  return await Promise.all(lab.nodes.map((n) => startNodeAgent(lab, n, [...args, ...extra(n.index)], { detached })));
}

/**
 * Runs `kmcast wait` in every pod at once, unprivileged, as the init container does; resolves
 * once every one exited 0, with how long the slowest took. A non-zero exit is an error quoting it.
 */
export async function waitEveryPod(lab: Lab, timeoutS: number): Promise<number> {
  const t0 = Date.now();
  await Promise.all(
    lab.pods.map(async (p) => {
      const node = lab.nodes.find((n) => n.index === p.node)!;
      const argv = [...WAIT_SANDBOX, 'env', `KMCAST_NODE_IP=${node.underlayIp}`, `KMCAST_POD_IP=${p.ip}`, process.execPath, KMCAST_MAIN, 'wait', '--interval', '200ms', '--timeout', `${timeoutS}s`];
      const r = await runInNetns(p.netns, argv, (timeoutS + 10) * 1000);
      if (r.code !== 0) throw new KmcastError(`kmcast wait in pod ${p.name} exited ${String(r.code)}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
    }),
  );
  return Date.now() - t0;
}

/** True once every node with a member replicates `group` to every other node (each node's pods joined it). */
export async function nodesReplicate(runner: Runner, lab: Lab, group: string): Promise<boolean> {
  for (const n of lab.nodes) {
    const dsts = new Set((await new IpClient(runner, n.netns).bridge.mdb(DEMO_NODE_DEVICE)).filter((e) => e.grp === group).map((e) => e.dst));
    if (lab.nodes.some((o) => o !== n && !dsts.has(o.underlayIp))) return false;
  }
  return true;
}

/** Node 1's agent's /status. */
export async function nodeStatus(lab: Lab): Promise<NodeStatus> {
  return JSON.parse((await netnsFetch(lab.nodes[0]!.netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
}
