/**
 * The kernel's IPv6 counters of one network namespace (/proc/net/snmp6), read the way sysctl.ts
 * reads /proc/sys: the file directly in our own namespace (it shows the namespace of the process
 * that opens it), `cat` inside another one through the runner. This file is the only one that
 * writes that argv.
 */
import { readFile } from 'node:fs/promises';
import type { Runner } from './runner.js';

/** `Name value` lines of /proc/net/snmp6 as numbers. Pure; odd lines are skipped. */
export function parseSnmp6(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)\s+(\d+)\s*$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** /proc/net/snmp6 of `netns` (undefined: ours); throws when it cannot be read (no IPv6). */
export async function readSnmp6(runner: Runner, netns: string | undefined): Promise<Map<string, number>> {
  if (netns === undefined) return parseSnmp6(await readFile('/proc/net/snmp6', 'utf8'));
  return parseSnmp6((await runner.run(['cat', '/proc/net/snmp6'], { netns })).stdout);
}
