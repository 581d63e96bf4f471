/**
 * The node's uplink (the VXLAN underlay): --interface, or the default route's device (IPv4's,
 * else IPv6's on a node without an IPv4 default route); its MTU; the node IP: --node-ip, or the
 * uplink's first IPv4 address, else its first global IPv6 address. The node IP's family is the
 * underlay's: every VXLAN device of the agent, its control socket and its peers are of that
 * family (a kernel VXLAN device sends in one family, its `local` address's). Errors name the flag
 * to give.
 */
import { ConfigError } from '../errors.js';
import type { IpClient } from '../kernel/ip.js';

export interface Uplink {
  readonly uplink: string;
  readonly nodeIp: string;
  readonly mtu: number;
}

/** The family of a node address: 6 for IPv6 text, else 4. Pure. */
export function familyOf(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

export async function detectUplink(ip: IpClient, flags: { interface?: string | undefined; nodeIp?: string | undefined }): Promise<Uplink> {
  let uplink = flags.interface;
  if (uplink === undefined) {
    const [def] = await ip.defaultRoutes();
    const [def6] = def?.dev ? [] : await ip.defaultRoutes6();
    uplink = def?.dev ?? def6?.dev;
    if (uplink === undefined) throw new ConfigError('--interface: no default route (IPv4 or IPv6) to take the uplink from; give --interface NAME');
  }
  const link = await ip.link(uplink);
  if (!link) throw new ConfigError(`--interface: ${uplink} does not exist on this node`);
  let nodeIp = flags.nodeIp;
  if (nodeIp === undefined) {
    const [first] = await ip.addrs(uplink);
    const [first6] = first ? [] : await ip.addrs6(uplink);
    if (!first && !first6) throw new ConfigError(`--node-ip: ${uplink} has no IPv4 and no global IPv6 address; give --node-ip IP`);
    nodeIp = (first ?? first6)!.split('/')[0]!;
  }
  return { uplink, nodeIp, mtu: link.mtu };
}
