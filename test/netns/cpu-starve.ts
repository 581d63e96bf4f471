/**
 * CPU starvation for fault tests: a CPU quota on a cgroup the test's agents are moved into
 * (cgroup v2 `cpu.max`, else cgroup v1 `cpu.cfs_quota_us`), or, where neither is writable, busy
 * loops at a higher priority pinned with taskset to the cores the agents are pinned to. Only
 * processes the test adds are affected; `close()` moves them back and removes the cgroup or kills
 * the loops, and is safe to call twice or after a failure half-way.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const PERIOD_US = 100_000;

export interface Starver {
  /** 'cgroup v2 cpu.max', 'cgroup v1 cpu.cfs_quota_us' or 'busy loops'. */
  readonly how: string;
  add(pid: number): Promise<void>;
  /** CPU time the added processes get together, in CPUs (0.02 = 2% of one core). Busy loops: ignored. */
  setQuota(cpus: number): Promise<void>;
  /** Time the added processes were held back by the quota so far, ms (busy loops: undefined). */
  throttledMs(): Promise<number | undefined>;
  close(): Promise<void>;
}

async function tryWrite(path: string, text: string): Promise<boolean> {
  try {
    await writeFile(path, text);
    return true;
  } catch {
    return false;
  }
}

function procsOf(text: string): number[] {
  return text.split('\n').filter(Boolean).map(Number);
}

async function cgroupStarver(kind: 'v2' | 'v1', dir: string, parentProcs: string): Promise<Starver | undefined> {
  try {
    await mkdir(dir);
  } catch {
    return undefined;
  }
  const setQuota = async (cpus: number): Promise<void> => {
    const quota = Math.max(1000, Math.round(cpus * PERIOD_US));
    if (kind === 'v2') await writeFile(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    else {
      await writeFile(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      await writeFile(join(dir, 'cpu.cfs_quota_us'), String(quota));
    }
  };
  try {
    await setQuota(1);
  } catch {
    await rmdir(dir).catch(() => undefined);
    return undefined;
  }
  let closed = false;
  return {
    how: kind === 'v2' ? 'cgroup v2 cpu.max' : 'cgroup v1 cpu.cfs_quota_us',
    async add(pid) {
      await writeFile(join(dir, 'cgroup.procs'), String(pid));
    },
    setQuota,
    async throttledMs() {
      const stat = await readFile(join(dir, 'cpu.stat'), 'utf8');
      const v2 = /throttled_usec (\d+)/.exec(stat);
      if (v2) return Number(v2[1]) / 1000;
      const v1 = /throttled_time (\d+)/.exec(stat);
      return v1 ? Number(v1[1]) / 1e6 : undefined;
    },
    async close() {
      if (closed) return;
      closed = true;
      // Move whatever is left back, then remove the group (it must be empty).
      for (let i = 0; i < 50; i++) {
        const left = procsOf(await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => ''));
        if (!left.length) break;
        for (const pid of left) await tryWrite(parentProcs, String(pid));
        await new Promise((r) => setTimeout(r, 20));
      }
      await rmdir(dir).catch(() => undefined);
    },
  };
}

function busyLoops(): Starver {
  const cores = Math.min(2, availableParallelism());
  const cpuList = Array.from({ length: cores }, (_, i) => i).join(',');
  const loops: ChildProcess[] = [];
  for (let i = 0; i < cores; i++) {
    // Two loops per core at nice -10: the agents (nice 0, same cores) get a small share.
    for (let j = 0; j < 2; j++) {
      loops.push(spawn('taskset', ['-c', String(i), 'nice', '-n', '-10', 'python3', '-c', 'while True: pass'], { stdio: 'ignore' }));
    }
  }
  return {
    how: 'busy loops',
    async add(pid) {
      await new Promise<void>((resolve) => spawn('taskset', ['-pc', cpuList, String(pid)], { stdio: 'ignore' }).on('exit', () => resolve()));
    },
    async setQuota() {},
    async throttledMs() {
      return undefined;
    },
    async close() {
      for (const l of loops) if (l.exitCode === null && l.signalCode === null) l.kill('SIGKILL');
    },
  };
}

/** A starver named `name` (prefix it kmc): the first mechanism this machine allows. */
export async function cpuStarver(name: string): Promise<Starver> {
  const root = '/sys/fs/cgroup';
  const v2 = existsSync(join(root, 'cgroup.controllers')) && (await readFile(join(root, 'cgroup.subtree_control'), 'utf8').catch(() => '')).split(/\s+/).includes('cpu');
  if (v2) {
    const s = await cgroupStarver('v2', join(root, name), join(root, 'cgroup.procs'));
    if (s) return s;
  }
  if (existsSync(join(root, 'cpu', 'cpu.cfs_quota_us'))) {
    const s = await cgroupStarver('v1', join(root, 'cpu', name), join(root, 'cpu', 'cgroup.procs'));
    if (s) return s;
  }
  return busyLoops();
}
