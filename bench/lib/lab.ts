/** Lab helpers for the kmcast scenarios: build a lab, start agents, wait for overlay state. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { DEFAULT_SERVICE } from '../../src/lab/plan.js';
import { podFetch, startAgent, startAgentProcess } from '../../src/lab/process.js';
import type { AgentHandle } from '../../src/lab/process.js';
import type { Lab, LabPod, NodeStyle } from '../../src/lab/types.js';
import { BridgeClient } from '../../src/kernel/bridge.js';
import { runner } from './net.js';
import { parseCpuTicks, parseVmRssBytes } from './pure.js';

export const OVERLAY_DEVICE = 'vx0';

export async function buildLab(id: string, nodes: readonly NodeStyle[], podsPerNode: number, opts: { ipv6?: boolean } = {}): Promise<Lab> {
  await labDown(runner, { id }).catch(() => undefined);
  return await labUp({ id, nodes, podsPerNode, mtu: 1500, service: DEFAULT_SERVICE, ...(opts.ipv6 ? { ipv6: true } : {}) }, { runner });
}

export async function removeLab(id: string): Promise<void> {
  await labDown(runner, { id });
}

export type ReplicationMode = 'selective' | 'flood';

/**
 * Agent flags of the data-plane scenarios: the production defaults (heartbeat 1 s, expiry 5
 * heartbeats, unregistered groups dropped) and the replication mode under test.
 */
export function benchAgentArgs(mode: ReplicationMode): string[] {
  return ['--replication', mode, '--log-level', 'info'];
}

/** The replication mode the pod's agent reports on /status (it may fall back to flood by itself). */
export async function agentReplication(pod: LabPod): Promise<string | undefined> {
  const r = await podFetch(pod, '/status');
  if (r.status !== 200) return undefined;
  const s = JSON.parse(r.body) as { replication?: unknown };
  return typeof s.replication === 'string' ? s.replication : undefined;
}

export async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await fn().catch(() => false)) return Date.now() - t0;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export async function waitReady(lab: Lab, pods: readonly LabPod[], timeoutMs = 30_000): Promise<void> {
  await Promise.all(
    pods.map(async (p) => {
      try {
        await waitFor(`agent /readyz in ${p.name}`, async () => (await podFetch(p, '/readyz')).status === 200, timeoutMs, 300);
      } catch (err) {
        const log = await readFile(join(lab.stateDir, `${p.name}.agent.log`), 'utf8').catch(() => '');
        throw new Error(`${err instanceof Error ? err.message : String(err)}; agent log ends: ${log.slice(-600)}`);
      }
    }),
  );
}

/** Flood (all-zero MAC) destinations on the pod's vx0. */
export async function floodPeers(pod: LabPod): Promise<string[]> {
  const fdb = await new BridgeClient(runner, pod.netns).fdb(OVERLAY_DEVICE).catch(() => []);
  return fdb.filter((e) => e.mac === '00:00:00:00:00:00' && e.dst !== undefined).map((e) => e.dst!);
}

/** MDB destinations for `group` on `dev` in `netns`. */
export async function mdbDestinationsIn(netns: string, dev: string, group: string): Promise<string[]> {
  const mdb = await new BridgeClient(runner, netns).mdb(dev).catch(() => []);
  return mdb.filter((e) => e.grp === group && e.dst !== undefined).map((e) => e.dst!);
}

/** MDB destinations for `group` on the pod's vx0. */
export async function mdbDestinations(pod: LabPod, group: string): Promise<string[]> {
  return await mdbDestinationsIn(pod.netns, OVERLAY_DEVICE, group);
}

/** Every MDB entry on the pod's vx0, one line each ("grp G dst D"). */
export async function mdbEntries(pod: LabPod): Promise<string[]> {
  return (await new BridgeClient(runner, pod.netns).mdb(OVERLAY_DEVICE)).map((e) => `grp ${e.grp} dst ${e.dst ?? '-'}`);
}

/** Starts agents in `pods`; the lab's headless Service answers with `members` (default: pods). */
export async function startAgents(lab: Lab, pods: readonly LabPod[], args: readonly string[], members: readonly LabPod[] = pods): Promise<AgentHandle[]> {
  await setServiceMembers(
    lab,
    members.map((p) => p.ip),
  );
  return await Promise.all(pods.map((p) => startAgent(lab, p, args)));
}

/**
 * startAgents in batches of `batch`, each batch ready (/readyz) before the next starts: dozens of
 * Node.js processes started at once on 2 cores measure the start-up stampede, not the agent.
 */
export async function startAgentsInBatches(lab: Lab, pods: readonly LabPod[], args: readonly string[], members: readonly LabPod[], batch = 8): Promise<AgentHandle[]> {
  await setServiceMembers(
    lab,
    members.map((p) => p.ip),
  );
  const out: AgentHandle[] = [];
  for (let i = 0; i < pods.length; i += batch) {
    const slice = pods.slice(i, i + batch);
    out.push(...(await Promise.all(slice.map((p) => startAgent(lab, p, args)))));
    await waitReady(lab, slice, 60_000);
  }
  return out;
}

export async function stopAgents(agents: readonly AgentHandle[]): Promise<void> {
  await Promise.all(agents.map(async (a) => await a.stop()));
}

/**
 * Starts `kmcast agent` with the given Node.js/V8 options before the script (`node OPTS main.js
 * agent ...`; some V8 flags such as --optimize-for-size are refused in NODE_OPTIONS) and only
 * the given env on top of ours, at log level info as in production.
 */
export async function startAgentWithNode(lab: Lab, pod: LabPod, nodeArgs: readonly string[], args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<AgentHandle> {
  return await startAgentProcess(lab, pod, ['--log-level', 'info', ...args], { detached: false, env: { MALLOC_ARENA_MAX: undefined, ...env }, nodeArgs });
}

/**
 * RSS (bytes: at the end of the window, and the highest of samples every 250 ms in it, since RSS
 * rises and falls with garbage collection) and CPU (% of one core) of a process over `windowMs`.
 */
export async function sampleResources(pid: number, windowMs: number): Promise<{ rssBytes: number | null; rssMaxBytes: number | null; cpuPercent: number | null }> {
  const ticks = async (): Promise<number | undefined> => parseCpuTicks(await readFile(`/proc/${pid}/stat`, 'utf8'));
  const rssNow = async (): Promise<number | undefined> => parseVmRssBytes(await readFile(`/proc/${pid}/status`, 'utf8'));
  const t0 = await ticks();
  const w0 = Date.now();
  const samples: number[] = [];
  while (Date.now() - w0 < windowMs) {
    await sleep(Math.min(250, Math.max(1, windowMs - (Date.now() - w0))));
    const r = await rssNow();
    if (r !== undefined) samples.push(r);
  }
  const t1 = await ticks();
  const elapsed = (Date.now() - w0) / 1000;
  // USER_HZ is 100 on every Linux architecture kmcast targets.
  const cpu = t0 === undefined || t1 === undefined ? null : ((t1 - t0) / 100 / elapsed) * 100;
  return { rssBytes: samples[samples.length - 1] ?? null, rssMaxBytes: samples.length > 0 ? Math.max(...samples) : null, cpuPercent: cpu };
}
