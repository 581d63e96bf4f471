/**
 * Facts about the sidecar's namespace: reverse-path filtering, read and set through a Sysctl
 * client for the namespace it acts in (src/kernel/sysctl.ts); the capabilities are
 * src/runtime/caps.ts, re-exported here for the sidecar's readers. The pure part
 * (effectiveRpFilter) is shared with `kmcast doctor`.
 */
import type { Sysctl } from '../kernel/sysctl.js';

export { CAP_NET_ADMIN, capEffOf, hasCapability, hasNetAdmin } from '../runtime/caps.js';

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
