/**
 * The pod's overlay as the sidecar's flags and its namespace define it: the underlay (--interface,
 * else the default route's device), the pod IP (--pod-ip, else the underlay's first address, which
 * it must be one of), the underlay's MTU, and the replication iproute2 can program (selective
 * needs iproute2 >= 6.3 for VXLAN MDB entries, else every group floods, loudly). Reads the
 * namespace through an IpClient; every refusal is a ConfigError that names the flag.
 */
import { ConfigError } from '../errors.js';
import type { IpClient } from '../kernel/ip.js';
import { MDB_DST_MIN_VERSION, versionAtLeast } from '../kernel/parse.js';
import type { Logger } from '../log.js';
import type { OverlaySpec, Replication } from '../overlay/desired.js';
import type { AgentConfig } from './config.js';

export type SpecConfig = Pick<AgentConfig, 'interface' | 'podIp' | 'addressing' | 'replication' | 'device' | 'vni' | 'vxlanPort' | 'broadcast' | 'unregistered'>;

/** The overlay spec, and whether selective replication fell back to flooding. */
export async function podOverlaySpec(ip: IpClient, cfg: SpecConfig, log: Logger): Promise<{ spec: OverlaySpec; floodFallback: boolean }> {
  let underlay = cfg.interface;
  if (!underlay) {
    const [def] = await ip.defaultRoutes();
    underlay = def?.dev;
    if (!underlay) throw new ConfigError('--interface: there is no default route to find the underlay from; name the pod interface with --interface (e.g. eth0)');
  }
  const link = await ip.link(underlay);
  if (!link) throw new ConfigError(`--interface: device ${JSON.stringify(underlay)} does not exist in this network namespace`);
  const addrs = (await ip.addrs(underlay)).map((a) => a.split('/')[0]!);
  const podIp = cfg.podIp ?? addrs[0];
  if (!podIp) throw new ConfigError(`--interface: ${underlay} has no IPv4 address; give the pod IP with --pod-ip (KMCAST_POD_IP)`);
  if (!addrs.includes(podIp)) throw new ConfigError(`--pod-ip: ${podIp} is not an address of ${underlay} (${addrs.join(', ') || 'none'})`);
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
      broadcastAddress: cfg.broadcast?.address,
      unregistered: cfg.unregistered,
      replication,
    },
    floodFallback: replication === 'flood' && cfg.replication === 'selective',
  };
}
