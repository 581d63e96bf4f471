/** Lab helpers for the kmcast scenarios: build a lab, start agents, wait for overlay state. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { DEFAULT_SERVICE } from '../../src/lab/plan.js';
import { podFetch, startAgent } from '../../src/lab/process.js';
import type { AgentHandle } from '../../src/lab/process.js';
import type { Lab, LabPod, NodeStyle } from '../../src/lab/types.js';
import { run, runner } from './net.js';
import { parseCpuTicks, parseVmRssBytes } from './pure.js';

export const OVERLAY_DEVICE = 'vx0';

export async function buildLab(id: string, nodes: readonly NodeStyle[], podsPerNode: number): Promise<Lab> {
  await labDown(runner, { id }).catch(() => undefined);
  return await labUp({ id, nodes, podsPerNode, mtu: 1500, service: DEFAULT_SERVICE }, { runner });
}

export async function removeLab(id: string): Promise<void> {
  await labDown(runner, { id });
}

/** Agent flags of the data-plane scenarios: see the flood-mode note in scenarios/kmcast.ts. */
export const BENCH_AGENT_ARGS = ['--unregistered', 'flood', '--heartbeat-interval', '5000', '--peer-expiry', '100', '--log-level', 'info'] as const;

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
  const out = await run(['bridge', 'fdb', 'show', 'dev', OVERLAY_DEVICE], pod.netns).catch(() => '');
  return [...out.matchAll(/^00:00:00:00:00:00 dst (\S+)/gm)].map((m) => m[1] ?? '');
}

/** MDB destinations for `group` on the pod's vx0. */
export async function mdbDestinations(pod: LabPod, group: string): Promise<string[]> {
  const out = await run(['bridge', 'mdb', 'show', 'dev', OVERLAY_DEVICE], pod.netns).catch(() => '');
  return out
    .split('\n')
    .filter((l) => l.includes(`grp ${group} `))
    .map((l) => /dst (\S+)/.exec(l)?.[1] ?? '')
    .filter((d) => d !== '');
}

/** Starts agents in `pods`; the lab's headless Service answers with `members` (default: pods). */
export async function startAgents(lab: Lab, pods: readonly LabPod[], args: readonly string[], members: readonly LabPod[] = pods): Promise<AgentHandle[]> {
  await setServiceMembers(lab, members.map((p) => p.ip));
  return await Promise.all(pods.map((p) => startAgent(lab, p, args)));
}

export async function stopAgents(agents: readonly AgentHandle[]): Promise<void> {
  await Promise.all(
    agents.map(async (a) => {
      if (a.child.pid !== undefined && a.child.exitCode === null && a.child.signalCode === null) {
        try {
          process.kill(a.child.pid, 'SIGCONT'); // in case a scenario froze it
        } catch {
          // already gone
        }
      }
      await a.stop();
    }),
  );
}

/** RSS (bytes) and CPU (% of one core) of a process over `windowMs`. */
export async function sampleResources(pid: number, windowMs: number): Promise<{ rssBytes: number | null; cpuPercent: number | null }> {
  const ticks = async (): Promise<number | undefined> => parseCpuTicks(await readFile(`/proc/${pid}/stat`, 'utf8'));
  const t0 = await ticks();
  const w0 = Date.now();
  await sleep(windowMs);
  const t1 = await ticks();
  const elapsed = (Date.now() - w0) / 1000;
  const rss = parseVmRssBytes(await readFile(`/proc/${pid}/status`, 'utf8'));
  // USER_HZ is 100 on every Linux architecture kmcast targets.
  const cpu = t0 === undefined || t1 === undefined ? null : ((t1 - t0) / 100 / elapsed) * 100;
  return { rssBytes: rss ?? null, cpuPercent: cpu };
}
