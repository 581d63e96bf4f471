/**
 * The node's uplink (the VXLAN underlay): --interface, or the default route's device; its MTU;
 * the node IP: --node-ip, or the uplink's first IPv4 address. Errors name the flag to give.
 */
import { ConfigError } from '../errors.js';
import type { IpClient } from '../kernel/ip.js';

export interface Uplink {
  readonly uplink: string;
  readonly nodeIp: string;
  readonly mtu: number;
}

export async function detectUplink(ip: IpClient, flags: { interface?: string | undefined; nodeIp?: string | undefined }): Promise<Uplink> {
  let uplink = flags.interface;
  if (uplink === undefined) {
    const [def] = await ip.defaultRoutes();
    if (!def?.dev) throw new ConfigError('--interface: no default route to take the uplink from; give --interface NAME');
    uplink = def.dev;
  }
  const link = await ip.link(uplink);
  if (!link) throw new ConfigError(`--interface: ${uplink} does not exist on this node`);
  let nodeIp = flags.nodeIp;
  if (nodeIp === undefined) {
    const [first] = await ip.addrs(uplink);
    if (!first) throw new ConfigError(`--node-ip: ${uplink} has no IPv4 address; give --node-ip IP`);
    nodeIp = first.split('/')[0]!;
  }
  return { uplink, nodeIp, mtu: link.mtu };
}
