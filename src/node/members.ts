/**
 * Which member pods live on this node, and where: pod IP -> host veth -> the pod's namespace and
 * the ifindex of its side of the veth. Everything is read through iproute2 (`-j`), in the node's
 * namespace; the decision logic (`classify`, `matchBridgePort`) is pure.
 *
 * Routes: one read of the node's IPv4 routes (and rules) per resolution pass, every IP matched in
 * src/node/routes.ts; only when the node has policy rules beyond the kernel's defaults is each IP
 * asked with `ip route get` (the kernel evaluates the rules).
 *
 * Calico style: the route to the pod IP leads straight to its host veth.
 * Bridge style (host veth enslaved to a node bridge): the route leads to the bridge. The pod's
 * port is found by scanning the bridge's veth ports and reading the address on each peer in its
 * own namespace. Not through the neighbour table or the bridge FDB: both are learned from the
 * pod's own traffic, and a pod that only listens (or has just started) has neither entry, while
 * its address is there from the moment the CNI configured it.
 */
import type { IpClient } from '../iproute2/client.js';
import type { LinkInfo } from '../iproute2/parse.js';
import type { NotProgrammedReason } from './api.js';
import type { RouteMatch } from './routes.js';
import { RouteTable, defaultRulesOnly } from './routes.js';

export interface LocalMember {
  readonly ip: string;
  readonly veth: string;
  readonly vethIndex: number;
  /** The pod's namespace name (as `ip netns` knows it). */
  readonly netns: string;
  /** ifindex of the pod's side of the veth (its eth0, whatever it is called). */
  readonly podIndex: number;
}

export type Resolution = { readonly local: LocalMember } | { readonly reason: Exclude<NotProgrammedReason, 'not_member' | 'pending'> };

/** What the route's device is: the pod's own veth, a bridge to scan, or not a local pod. Pure. */
export function classify(route: { dev: string | undefined; gateway: string | undefined; type: string } | undefined, link: LinkInfo | undefined): 'veth' | 'bridge' | 'remote' {
  if (!route || route.type !== 'unicast' || route.gateway !== undefined || !link) return 'remote';
  if (link.kind === 'veth') return 'veth';
  if (link.kind === 'bridge') return 'bridge';
  return 'remote';
}

/** The bridge port whose peer holds `ip`, given each port's peer addresses. Pure. */
export function matchBridgePort(ports: readonly LinkInfo[], peerAddrs: ReadonlyMap<number, readonly string[]>, ip: string): LinkInfo | undefined {
  return ports.find((p) => peerAddrs.get(p.ifindex)?.includes(ip));
}

/** One resolution pass: caches the namespace ids and bridge scans it reads. */
export class MemberResolver {
  private nsids: Map<number, string> | undefined;
  private routeLookup: Promise<(ip: string) => Promise<RouteMatch | undefined>> | undefined;
  private readonly bridgeScans = new Map<string, Promise<{ ports: LinkInfo[]; addrs: Map<number, string[]> }>>();
  private readonly linkReads = new Map<string, Promise<LinkInfo[]>>();

  constructor(
    private readonly ip: IpClient,
    private readonly forNetns: (netns: string) => IpClient,
  ) {}

  private async netnsIds(): Promise<Map<number, string>> {
    this.nsids ??= await this.ip.netnsIds();
    return this.nsids;
  }

  /** Reads the rules and routes once; a node with policy rules falls back to `ip route get`. */
  private lookup(): Promise<(ip: string) => Promise<RouteMatch | undefined>> {
    this.routeLookup ??= (async () => {
      if (!defaultRulesOnly(await this.ip.rules4())) return async (ip: string) => await this.ip.routeGet(ip);
      const table = new RouteTable(await this.ip.routes4());
      return async (ip: string) => await Promise.resolve(table.lookup(ip));
    })();
    return this.routeLookup;
  }

  private scanBridge(bridge: string): Promise<{ ports: LinkInfo[]; addrs: Map<number, string[]> }> {
    let scan = this.bridgeScans.get(bridge);
    if (!scan) {
      scan = (async () => {
        const ports = (await this.ip.links({ master: bridge })).filter((p) => p.kind === 'veth');
        const ids = await this.netnsIds();
        const addrs = new Map<number, string[]>();
        await Promise.all(
          ports.map(async (p) => {
            const ns = p.linkNetnsid === undefined ? undefined : ids.get(p.linkNetnsid);
            if (ns === undefined || p.linkIndex === undefined) return;
            addrs.set(p.ifindex, await this.forNetns(ns).addrsOfIndex(p.linkIndex).catch(() => []));
          }),
        );
        return { ports, addrs };
      })();
      this.bridgeScans.set(bridge, scan);
    }
    return scan;
  }

  /** One read per device and pass (most IPs of a batch lead to the same few devices). */
  private linkOf(dev: string): Promise<LinkInfo[]> {
    let read = this.linkReads.get(dev);
    if (!read) {
      read = this.ip.links({ dev });
      this.linkReads.set(dev, read);
    }
    return read;
  }

  async resolve(podIp: string): Promise<Resolution> {
    const route = await (await this.lookup())(podIp);
    const [link] = route?.dev === undefined ? [] : await this.linkOf(route.dev);
    let veth: LinkInfo | undefined;
    switch (classify(route, link)) {
      case 'veth':
        veth = link;
        break;
      case 'bridge': {
        const scan = await this.scanBridge(link!.name);
        veth = matchBridgePort(scan.ports, scan.addrs, podIp);
        break;
      }
      default:
        return { reason: 'not_local' };
    }
    if (!veth) return { reason: 'not_local' };
    const ns = veth.linkNetnsid === undefined ? undefined : (await this.netnsIds()).get(veth.linkNetnsid);
    if (ns === undefined || veth.linkIndex === undefined) return { reason: 'no_netns' };
    return { local: { ip: podIp, veth: veth.name, vethIndex: veth.ifindex, netns: ns, podIndex: veth.linkIndex } };
  }
}

/** Resolves every listed IP (in order) into the local members and the reasons for the rest. */
export async function resolveListed(
  resolver: MemberResolver,
  listed: readonly string[],
): Promise<{ local: Map<string, LocalMember>; reasons: Map<string, Exclude<NotProgrammedReason, 'not_member' | 'pending'>> }> {
  const local = new Map<string, LocalMember>();
  const reasons = new Map<string, Exclude<NotProgrammedReason, 'not_member' | 'pending'>>();
  for (const ip of listed) {
    const r = await resolver.resolve(ip);
    if ('local' in r) local.set(ip, r.local);
    else reasons.set(ip, r.reason);
  }
  return { local, reasons };
}

/**
 * Pod IPs that more than one domain lists, with the domains (in the order given). Such a pod is
 * captured by none of them: membership is what DNS says, and whoever can write the Endpoints of
 * one domain's Service could otherwise pull any pod into their domain. Pure.
 */
export function sharedClaims(domains: ReadonlyArray<{ readonly service: string; readonly listed: readonly string[] }>): Map<string, string[]> {
  const by = new Map<string, string[]>();
  for (const d of domains) {
    for (const ip of new Set(d.listed)) {
      const list = by.get(ip);
      if (list) list.push(d.service);
      else by.set(ip, [d.service]);
    }
  }
  for (const [ip, services] of by) if (services.length < 2) by.delete(ip);
  return by;
}

/** A one-line identity of a member set (IP, veth and its ifindex): equal when nothing moved. Pure. */
export function membersKey(members: Iterable<LocalMember>): string {
  return [...members].map((m) => `${m.ip}@${m.veth}#${m.vethIndex}`).join();
}
