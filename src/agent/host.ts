/**
 * Facts about the sidecar's own namespace read from /proc: reverse-path filtering (the
 * capabilities are src/runtime/caps.ts, re-exported here for the sidecar's readers). The pure
 * part (effectiveRpFilter) is shared with `kmcast doctor`.
 */
import { open, readFile, writeFile } from 'node:fs/promises';

export { CAP_NET_ADMIN, capEffOf, hasCapability, hasNetAdmin } from '../runtime/caps.js';

/**
 * The kernel uses max(conf.all.rp_filter, conf.<dev>.rp_filter) (ip-sysctl.rst): 0 off, 1 strict,
 * 2 loose. So loose on the device beats strict `all`, and only an effective 1 drops our traffic.
 */
export function effectiveRpFilter(all: number, dev: number): number {
  return Math.max(all, dev);
}

const rpPath = (dev: string): string => `/proc/sys/net/ipv4/conf/${dev}/rp_filter`;

/** What to do about strict rp_filter where the agent cannot loosen it (agent and doctor print it). */
export const RP_FILTER_FIX =
  'set net.ipv4.conf.all.rp_filter=2 (loose) in the pod: securityContext.sysctls (an unsafe sysctl: the kubelet must allow it with ' +
  '--allowed-unsafe-sysctls=net.ipv4.conf.all.rp_filter), or on the node before pods start. 2, not 0: the kernel uses the larger of ' +
  'all and the device, and vx0 starts with conf.default, which is 1 on strict nodes';

export async function readRpFilter(dev: string): Promise<number> {
  return Number((await readFile(rpPath(dev), 'utf8')).trim());
}

/** Sets loose mode on `dev`; returns false (not throws) when /proc/sys is read-only or denied. */
export async function trySetLooseRpFilter(dev: string): Promise<boolean> {
  try {
    await writeFile(rpPath(dev), '2\n');
    return true;
  } catch {
    return false;
  }
}

/** Whether /proc/sys can be written (it is read-only in unprivileged containers); writes nothing. */
export async function procSysWritable(): Promise<boolean> {
  try {
    const fh = await open(rpPath('all'), 'r+');
    await fh.close();
    return true;
  } catch {
    return false;
  }
}
