/**
 * Kernel parameters (/proc/sys) of one network namespace, the namespace a parameter like every
 * client's. Keys are paths under /proc/sys with slashes (`net/ipv4/conf/vx0/rp_filter`), so a
 * device name with a dot (eth0.100) stays one component.
 *
 * How, and why two ways:
 * - Our own namespace (netns undefined): the file under /proc/sys is read and written directly,
 *   no process. /proc/sys/net shows the namespace of the process that opens the file, which is
 *   ours, so no setns is needed; and a read-only /proc/sys (unprivileged containers) shows up as
 *   the errno of the open (EROFS, EACCES), which is how the agent tells "cannot loosen
 *   rp_filter" apart. This is the agent's case in a pod.
 * - Another namespace: `sysctl` runs inside it through the runner (`ip netns exec` or nsenter,
 *   the runner's entry). Node.js cannot setns(2), and no file under /proc shows another
 *   namespace's net sysctls (/proc/PID/net has no sys), so a process inside the namespace is the
 *   only setns-free way; `sysctl` names the key that failed and is what the lab uses already.
 * This file is the only one that writes `sysctl` argv.
 */
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runner } from './runner.js';

export const PROC_SYS = '/proc/sys';

/** Reads and writes kernel parameters; interface is created to allow testing (FakeSysctl). */
export interface Sysctl {
  /** The value, trimmed; throws when the key cannot be read. */
  read(key: string): Promise<string>;
  /** Sets the value; throws when it cannot (read-only /proc/sys, no such key, no permission). */
  write(key: string, value: string | number): Promise<void>;
  /** Whether the key can be written, writing nothing. */
  writable(key: string): Promise<boolean>;
}

/** A key as a path: no absolute path, no `..`, no empty component. */
function checkKey(key: string): void {
  const parts = key.split('/');
  if (key.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) throw new TypeError(`not a sysctl key: ${JSON.stringify(key)}`);
}

export class SysctlClient implements Sysctl {
  constructor(
    readonly runner: Runner,
    /** The namespace to act in; undefined = our own (files under /proc/sys, no process). */
    readonly netns?: string,
    /** Where our own namespace's /proc/sys is (tests point it at a directory). */
    private readonly procSys = PROC_SYS,
  ) {}

  async read(key: string): Promise<string> {
    checkKey(key);
    if (this.netns === undefined) return (await readFile(join(this.procSys, key), 'utf8')).trim();
    return (await this.runner.run(['sysctl', '-n', key], { netns: this.netns })).stdout.trim();
  }

  async write(key: string, value: string | number): Promise<void> {
    checkKey(key);
    if (this.netns === undefined) await writeFile(join(this.procSys, key), `${value}\n`);
    else await this.runner.run(['sysctl', '-q', '-w', `${key}=${value}`], { netns: this.netns });
  }

  async writable(key: string): Promise<boolean> {
    checkKey(key);
    if (this.netns !== undefined) {
      const r = await this.runner.run(['test', '-w', join(PROC_SYS, key)], { netns: this.netns, allowFail: true }).catch(() => undefined);
      return r?.code === 0;
    }
    try {
      const fh = await open(join(this.procSys, key), 'r+');
      await fh.close();
      return true;
    } catch {
      return false;
    }
  }
}

/** In-memory parameters: records writes; `readOnly` makes every write fail as on a read-only /proc/sys. */
export class FakeSysctl implements Sysctl {
  readonly values: Map<string, string>;
  readonly writes: Array<{ key: string; value: string }> = [];
  readOnly = false;

  constructor(values: Record<string, string | number> = {}) {
    this.values = new Map(Object.entries(values).map(([k, v]) => [k, String(v)]));
  }

  async read(key: string): Promise<string> {
    const v = this.values.get(key);
    if (v === undefined) throw Object.assign(new Error(`ENOENT: no such sysctl ${key}`), { code: 'ENOENT' });
    return await Promise.resolve(v);
  }

  async write(key: string, value: string | number): Promise<void> {
    if (this.readOnly) throw Object.assign(new Error(`EROFS: read-only file system, open '${PROC_SYS}/${key}'`), { code: 'EROFS' });
    this.writes.push({ key, value: String(value) });
    this.values.set(key, String(value));
    await Promise.resolve();
  }

  async writable(key: string): Promise<boolean> {
    return await Promise.resolve(!this.readOnly && this.values.has(key));
  }
}
