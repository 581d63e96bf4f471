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
 * port is found by scanning the bridge's veth ports and reading the addresses (IPv4 and global
 * IPv6: an IPv6-only member is found by its IPv6 address) on each peer in its own namespace. Not through the neighbour table or the bridge FDB: both are learned from the
 * pod's own traffic, and a pod that only listens (or has just started) has neither entry, while
 * its address is there from the moment the CNI configured it.
 */
import type { IpClient } from '../kernel/ip.js';
import type { LinkInfo } from '../kernel/parse.js';
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
  /** The host veth's MTU (a CNI gives the pod's eth0 the same): the longest frame it delivers. */
  readonly mtu?: number;
  /** The node's id of the pod's namespace (the veth's link-netnsid): its maddress events carry it. */
  readonly nsid?: number;
}

/**
 * `others`: more veths whose pod holds the IP (bridge style: any pod with NET_ADMIN can add a
 * member's IP to its own eth0); `local` is the one with the lowest ifindex, the oldest.
 */
export type Resolution = { readonly local: LocalMember; readonly others?: readonly LocalMember[] } | { readonly reason: Exclude<NotProgrammedReason, 'not_member' | 'pending'> };

/** What the route's device is: the pod's own veth, a bridge to scan, or not a local pod. Pure. */
export function classify(route: { dev: string | undefined; gateway: string | undefined; type: string } | undefined, link: LinkInfo | undefined): 'veth' | 'bridge' | 'remote' {
  if (!route || route.type !== 'unicast' || route.gateway !== undefined || !link) return 'remote';
  if (link.kind === 'veth') return 'veth';
  if (link.kind === 'bridge') return 'bridge';
  return 'remote';
}

/** The bridge port whose peer holds `ip`, given each port's peer addresses (the lowest ifindex). Pure. */
export function matchBridgePort(ports: readonly LinkInfo[], peerAddrs: ReadonlyMap<number, readonly string[]>, ip: string): LinkInfo | undefined {
  return matchBridgePorts(ports, peerAddrs, ip)[0];
}

/** Every bridge port whose peer holds `ip`, lowest ifindex (the oldest veth) first. Pure. */
export function matchBridgePorts(ports: readonly LinkInfo[], peerAddrs: ReadonlyMap<number, readonly string[]>, ip: string): LinkInfo[] {
  return ports.filter((p) => peerAddrs.get(p.ifindex)?.includes(ip)).sort((a, b) => a.ifindex - b.ifindex);
}

/**
 * A member IP stays bound to the veth it was first found on until that veth is gone: a second
 * veth that claims the IP (a pod adding the member's address to its own eth0) is refused, not
 * followed. Pure (whether a veth still exists is asked).
 */
export class MemberBindings {
  private readonly bound = new Map<string, { readonly veth: string; readonly vethIndex: number }>();

  /** The member for `ip` among the veths that claim it, and the refused claimants. */
  async choose(ip: string, claimants: readonly LocalMember[], exists: (veth: string, index: number) => Promise<boolean>): Promise<{ member: LocalMember | undefined; refused: LocalMember[] }> {
    const b = this.bound.get(ip);
    const same = (m: LocalMember): boolean => b !== undefined && m.veth === b.veth && m.vethIndex === b.vethIndex;
    const kept = claimants.find(same);
    if (kept) return { member: kept, refused: claimants.filter((m) => m !== kept) };
    if (b && (await exists(b.veth, b.vethIndex))) return { member: undefined, refused: [...claimants] };
    const [first, ...rest] = [...claimants].sort((x, y) => x.vethIndex - y.vethIndex);
    if (first) this.bound.set(ip, { veth: first.veth, vethIndex: first.vethIndex });
    else this.bound.delete(ip);
    return { member: first, refused: rest };
  }

  /** Forgets the IPs `keep` does not want (no domain lists them any more). */
  retain(keep: (ip: string) => boolean): void {
    for (const ip of this.bound.keys()) if (!keep(ip)) this.bound.delete(ip);
  }
}

/** One resolution pass: caches the namespace ids and bridge scans it reads. */
export class MemberResolver {
  private nsids: Map<number, string> | undefined;
  private routeLookup: Promise<(ip: string) => Promise<RouteMatch | undefined>> | undefined;
  private readonly bridgeScans = new Map<string, Promise<{ ports: LinkInfo[]; addrs: Map<number, string[]> }>>();
  private allLinks: Promise<Map<string, LinkInfo>> | undefined;

  constructor(
    private readonly ip: IpClient,
    private readonly forNetns: (netns: string) => IpClient,
  ) {}

  private async netnsIds(): Promise<Map<number, string>> {
    this.nsids ??= await this.ip.netnsIds();
    return this.nsids;
  }

  /**
   * Reads the rules and routes once; a node with policy rules falls back to `ip route get`, and
   * so does every IPv6 member (an IPv6-only cluster's: its /128 or /64 route is asked of the
   * kernel, one `ip route get` per member and pass).
   */
  private lookup(): Promise<(ip: string) => Promise<RouteMatch | undefined>> {
    this.routeLookup ??= (async () => {
      if (!defaultRulesOnly(await this.ip.rules4())) return async (ip: string) => await this.ip.routeGet(ip);
      const table = new RouteTable(await this.ip.routes4());
      return async (ip: string) => (ip.includes(':') ? await this.ip.routeGet(ip) : table.lookup(ip));
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
            addrs.set(
              p.ifindex,
              await this.forNetns(ns)
                .addrsOfIndexBoth(p.linkIndex)
                .catch(() => []),
            );
          }),
        );
        return { ports, addrs };
      })();
      this.bridgeScans.set(bridge, scan);
    }
    return scan;
  }

  /**
   * The link `dev`, from one read of every link per pass: a process per device was two `ip`
   * processes per member and pass (110 members: 220), and the pass delayed joins behind it.
   */
  private async linkOf(dev: string): Promise<LinkInfo[]> {
    this.allLinks ??= this.ip.links({ all: true }).then((ls) => new Map(ls.map((l) => [l.name, l])));
    const l = (await this.allLinks).get(dev);
    return l ? [l] : [];
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
        const all = matchBridgePorts(scan.ports, scan.addrs, podIp);
        veth = all[0];
        if (all.length > 1) {
          const others = (await Promise.all(all.slice(1).map(async (v) => await this.member(podIp, v)))).filter((m): m is LocalMember => m !== undefined);
          const first = veth && (await this.member(podIp, veth));
          if (first) return others.length ? { local: first, others } : { local: first };
        }
        break;
      }
      default:
        return { reason: 'not_local' };
    }
    if (!veth) return { reason: 'not_local' };
    const m = await this.member(podIp, veth);
    return m ? { local: m } : { reason: 'no_netns' };
  }

  private async member(podIp: string, veth: LinkInfo): Promise<LocalMember | undefined> {
    const ns = veth.linkNetnsid === undefined ? undefined : (await this.netnsIds()).get(veth.linkNetnsid);
    if (ns === undefined || veth.linkIndex === undefined) return undefined;
    return { ip: podIp, veth: veth.name, vethIndex: veth.ifindex, netns: ns, podIndex: veth.linkIndex, nsid: veth.linkNetnsid, ...(veth.mtu !== undefined ? { mtu: veth.mtu } : {}) };
  }

  /** Whether the veth `name` with ifindex `index` still exists on the node. */
  async vethExists(name: string, index: number): Promise<boolean> {
    const [l] = await this.linkOf(name).catch(() => []);
    return l !== undefined && l.ifindex === index;
  }
}

/** Resolves every listed IP (in order) into the local members and the reasons for the rest. */
export async function resolveListed(
  resolver: MemberResolver,
  listed: readonly string[],
  bindings: MemberBindings,
): Promise<{ local: Map<string, LocalMember>; reasons: Map<string, Exclude<NotProgrammedReason, 'not_member' | 'pending'>>; conflicts: Map<string, LocalMember[]> }> {
  const local = new Map<string, LocalMember>();
  const reasons = new Map<string, Exclude<NotProgrammedReason, 'not_member' | 'pending'>>();
  const conflicts = new Map<string, LocalMember[]>();
  for (const ip of listed) {
    const r = await resolver.resolve(ip);
    if (!('local' in r)) {
      reasons.set(ip, r.reason);
      continue;
    }
    const { member, refused } = await bindings.choose(ip, [r.local, ...(r.others ?? [])], async (veth, index) => await resolver.vethExists(veth, index));
    if (member) local.set(ip, member);
    else reasons.set(ip, 'ip_conflict');
    if (refused.length) conflicts.set(ip, refused);
  }
  return { local, reasons, conflicts };
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
