/**
 * Facts about the agent's process and namespace: capabilities (from /proc/self) and reverse-path
 * filtering (sysctls of the namespace a Sysctl client acts in, src/kernel/sysctl.ts). The pure
 * parts (hasCapability, effectiveRpFilter) are shared with `kmcast doctor`.
 */
import { readFile } from 'node:fs/promises';
import type { Sysctl } from '../kernel/sysctl.js';

export const CAP_NET_ADMIN = 12;

/** CapEff from /proc/self/status (hex) has `bit` set. */
export function hasCapability(capEffHex: string, bit: number): boolean {
  return ((BigInt(`0x${capEffHex.trim() || '0'}`) >> BigInt(bit)) & 1n) === 1n;
}

export function capEffOf(procStatus: string): string {
  return /^CapEff:\s*([0-9a-fA-F]+)/m.exec(procStatus)?.[1] ?? '0';
}

export async function hasNetAdmin(): Promise<boolean> {
  return hasCapability(capEffOf(await readFile('/proc/self/status', 'utf8')), CAP_NET_ADMIN);
}

/**
 * The kernel uses max(conf.all.rp_filter, conf.<dev>.rp_filter) (ip-sysctl.rst): 0 off, 1 strict,
 * 2 loose. So loose on the device beats strict `all`, and only an effective 1 drops our traffic.
 */
export function effectiveRpFilter(all: number, dev: number): number {
  return Math.max(all, dev);
}

/** The sysctl key of a device's (or `all`'s, `default`'s) rp_filter. */
export const rpFilterKey = (dev: string): string => `net/ipv4/conf/${dev}/rp_filter`;

/** What to do about strict rp_filter where the agent cannot loosen it (agent and doctor print it). */
export const RP_FILTER_FIX =
  'set net.ipv4.conf.all.rp_filter=2 (loose) in the pod: securityContext.sysctls (an unsafe sysctl: the kubelet must allow it with ' +
  '--allowed-unsafe-sysctls=net.ipv4.conf.all.rp_filter), or on the node before pods start. 2, not 0: the kernel uses the larger of ' +
  'all and the device, and vx0 starts with conf.default, which is 1 on strict nodes';

export async function readRpFilter(sysctl: Sysctl, dev: string): Promise<number> {
  return Number(await sysctl.read(rpFilterKey(dev)));
}

/** Sets loose mode on `dev`; returns false (not throws) when /proc/sys is read-only or denied. */
export async function trySetLooseRpFilter(sysctl: Sysctl, dev: string): Promise<boolean> {
  try {
    await sysctl.write(rpFilterKey(dev), 2);
    return true;
  } catch {
    return false;
  }
}

/** Whether /proc/sys can be written (it is read-only in unprivileged containers); writes nothing. */
export async function procSysWritable(sysctl: Sysctl): Promise<boolean> {
  return await sysctl.writable(rpFilterKey('all'));
}
