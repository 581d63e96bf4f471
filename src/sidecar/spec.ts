/**
 * The pod's overlay as the sidecar's flags and its namespace define it: the underlay (--interface,
 * else the default route's device, IPv4's or IPv6's), the pod IP (--pod-ip, else the underlay's
 * first IPv4 address, else its first global IPv6 one on an IPv6-only pod; it must be one of
 * them), the underlay's MTU, and the replication iproute2 can program (selective needs iproute2
 * >= 6.3 for VXLAN MDB entries, else every group floods, loudly). Reads the
 * namespace through an IpClient; every refusal is a ConfigError that names the flag.
 */
import { ConfigError } from '../errors.js';
import type { IpClient } from '../kernel/ip.js';
import { MDB_DST_MIN_VERSION, versionAtLeast } from '../kernel/parse.js';
import { canonicalIpv6 } from '../net/ipv6.js';
import type { Logger } from '../log.js';
import type { OverlaySpec, Replication } from '../overlay/desired.js';
import type { AgentConfig } from './config.js';

export type SpecConfig = Pick<AgentConfig, 'interface' | 'podIp' | 'addressing' | 'replication' | 'device' | 'vni' | 'vxlanPort' | 'broadcast' | 'unregistered' | 'capture'>;

/** The overlay spec, and whether selective replication fell back to flooding. */
export async function podOverlaySpec(ip: IpClient, cfg: SpecConfig, log: Logger): Promise<{ spec: OverlaySpec; floodFallback: boolean }> {
  let underlay = cfg.interface;
  if (!underlay) {
    // An IPv6-only pod has no IPv4 default route: its IPv6 one names the underlay.
    const [def] = await ip.defaultRoutes();
    const [def6] = def?.dev ? [] : await ip.defaultRoutes6();
    underlay = def?.dev ?? def6?.dev;
    if (!underlay) throw new ConfigError('--interface: there is no default route (IPv4 or IPv6) to find the underlay from; name the pod interface with --interface (e.g. eth0)');
  }
  const link = await ip.link(underlay);
  if (!link) throw new ConfigError(`--interface: device ${JSON.stringify(underlay)} does not exist in this network namespace`);
  const podIp = await podAddress(ip, underlay, cfg.podIp);
  if (cfg.addressing.kind === 'subnet') {
    throw new ConfigError('--addressing: subnet=CIDR is not implemented in this version; use pod-ip (and set net.ipv4.conf.all.rp_filter=2 on strict nodes)');
  }
  const version = await ip.version();
  let replication: Replication = cfg.replication;
  if (replication === 'selective' && (!version || !versionAtLeast(version, MDB_DST_MIN_VERSION))) {
    replication = 'flood';
    log.warn({ iproute2: version?.join('.') ?? 'unknown' }, 'iproute2 < 6.3 cannot program VXLAN MDB entries: every group floods to every peer (install iproute2 >= 6.3 for selective replication)');
  }
  return {
    spec: {
      device: cfg.device,
      vni: cfg.vni,
      port: cfg.vxlanPort,
      underlay,
      underlayMtu: link.mtu,
      localIp: podIp,
      // An IPv6-only pod: its one address is the underlay's and vx0's IPv6 address alike.
      ...(podIp.includes(':') ? { localIp6: podIp } : {}),
      broadcastAddress: cfg.broadcast?.address,
      unregistered: cfg.unregistered,
      replication,
      capturesUnderlay: cfg.capture === 'on',
    },
    floodFallback: replication === 'flood' && cfg.replication === 'selective',
  };
}

/**
 * The pod IP, the underlay's `local`: --pod-ip (KMCAST_POD_IP from the downward API), else the
 * underlay's first IPv4 address, else (an IPv6-only pod) its first global IPv6 one. Its family is
 * the underlay's: VXLAN over IPv6, a udp6 control socket, peers from AAAA records.
 */
async function podAddress(ip: IpClient, underlay: string, given: string | undefined): Promise<string> {
  const strip = (a: string): string => a.split('/')[0]!;
  const v4 = (await ip.addrs(underlay)).map(strip);
  const v6 = given !== undefined && !given.includes(':') ? [] : (await ip.addrs6(underlay)).map((a) => canonicalIpv6(strip(a)) ?? strip(a));
  const podIp = given ?? v4[0] ?? v6[0];
  if (!podIp) throw new ConfigError(`--interface: ${underlay} has no IPv4 and no global IPv6 address; give the pod IP with --pod-ip (KMCAST_POD_IP)`);
  const own = podIp.includes(':') ? v6 : v4;
  if (!own.includes(podIp)) throw new ConfigError(`--pod-ip: ${podIp} is not an address of ${underlay} (${[...v4, ...v6].join(', ') || 'none'})`);
  return podIp;
}
