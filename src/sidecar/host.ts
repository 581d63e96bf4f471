/**
 * Facts about the sidecar's namespace: reverse-path filtering, read and set through a Sysctl
 * client for the namespace it acts in (src/kernel/sysctl.ts); the capabilities are
 * src/runtime/caps.ts, re-exported here for the sidecar's readers. The pure part
 * (effectiveRpFilter) is shared with `kmcast doctor`; the agent's start checks rp_filter with
 * checkRpFilter and precheckRpFilter.
 */
import { CapabilityError } from '../errors.js';
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

/**
 * With the pod IP on vx0, a strict reverse-path filter drops every overlay datagram (the route
 * back to a peer's pod IP is via eth0). Sets loose mode on `dev` and checks the effective value;
 * where /proc/sys is read-only (unprivileged containers) it can only check. Throws a
 * CapabilityError with the fix when it is strict.
 */
export async function checkRpFilter(sysctl: Sysctl, dev: string): Promise<{ all: number; own: number; effective: number }> {
  const set = await trySetLooseRpFilter(sysctl, dev);
  const [all, own] = await Promise.all([readRpFilter(sysctl, 'all'), readRpFilter(sysctl, dev)]);
  const effective = effectiveRpFilter(all, own);
  if (effective === 1) {
    throw new CapabilityError(
      `start agent: reverse-path filtering is strict on ${dev} (net.ipv4.conf.all.rp_filter=${all}, ${dev}=${own})${set ? '' : ' and /proc/sys is read-only'}, so overlay traffic would be dropped; ${RP_FILTER_FIX}`,
    );
  }
  return { all, own, effective };
}

/**
 * Before creating anything: where /proc/sys is read-only, vx0 will start with conf.default and
 * cannot be loosened, so a strict all/default is known to fail now rather than after setup.
 */
export async function precheckRpFilter(sysctl: Sysctl): Promise<void> {
  if (await procSysWritable(sysctl)) return;
  const [all, def] = await Promise.all([readRpFilter(sysctl, 'all'), readRpFilter(sysctl, 'default')]);
  if (effectiveRpFilter(all, def) === 1) {
    throw new CapabilityError(
      `start agent: reverse-path filtering is strict (net.ipv4.conf.all.rp_filter=${all}, default=${def}) and /proc/sys is read-only, so overlay traffic would be dropped; ${RP_FILTER_FIX}`,
    );
  }
}

/** The sysctl key that turns IPv6 off on a device (or `all`, `default`). */
export const disableIpv6Key = (dev: string): string => `net/ipv6/conf/${dev}/disable_ipv6`;

/**
 * Whether vx0 can carry IPv6 multicast: IPv6 is on for the pod interface and for new devices
 * (vx0 starts with conf.default). False when the kernel has no IPv6 at all (no such keys).
 */
export async function overlayIpv6(sysctl: Sysctl, underlay: string): Promise<boolean> {
  try {
    const [dev, def] = await Promise.all([sysctl.read(disableIpv6Key(underlay)), sysctl.read(disableIpv6Key('default'))]);
    return dev === '0' && def === '0';
  } catch {
    return false;
  }
}
