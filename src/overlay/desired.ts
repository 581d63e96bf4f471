/**
 * The desired data plane of one member pod (DESIGN section 2), computed from configuration and
 * the current peer set. Pure: no kernel access; the reconciler diffs it against what `ip -j` reads.
 */
import { canonicalGroup, isRoutableGroup } from '../net/groups.js';
import { sortIpv4 } from '../net/ipv4.js';

/** TEST-NET-1 address routed to a blackhole: the catch-all MDB entry for unregistered groups points here. */
export const BLACKHOLE_IP = '192.0.2.1';
/** The all-zero MAC: head-end replication (flood) entries of a VXLAN device. */
export const FLOOD_MAC = '00:00:00:00:00:00';
/**
 * An IPv6 underlay's catch-all remote: the discard-only prefix 100::/64 (RFC 6666), routed to a
 * blackhole like BLACKHOLE_IP. A VXLAN device sends in one family, its `local` address's.
 */
export const BLACKHOLE_IP6 = '100::1';
/** VXLAN over IPv4 adds 50 bytes: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. */
export const VXLAN_OVERHEAD = 50;
/** VXLAN over IPv6 adds 70 bytes: outer Ethernet 14 + IPv6 40 + UDP 8 + VXLAN 8. */
export const VXLAN_OVERHEAD6 = 70;

/** The encapsulation overhead on an underlay whose local address is `localIp`. Pure. */
export function vxlanOverhead(localIp: string): number {
  return localIp.includes(':') ? VXLAN_OVERHEAD6 : VXLAN_OVERHEAD;
}

/** The blackholed catch-all remote in the family of the underlay address `localIp`. Pure. */
export function blackholeFor(localIp: string): string {
  return localIp.includes(':') ? BLACKHOLE_IP6 : BLACKHOLE_IP;
}

/** A blackhole route's destination without its host prefix (/32, /128), as it is compared. */
export function hostRouteDst(dst: string): string {
  return dst.replace(/\/(32|128)$/, '');
}

export type Replication = 'selective' | 'flood';

export interface OverlaySpec {
  readonly device: string;
  readonly vni: number;
  readonly port: number;
  readonly underlay: string;
  readonly underlayMtu: number;
  /** The pod IP: VXLAN source address and (pod-ip addressing) vx0's own address. */
  readonly localIp: string;
  /** Directed broadcast address routed to the overlay (from --broadcast CIDR). */
  readonly broadcastAddress?: string | undefined;
  readonly unregistered: 'drop' | 'flood';
  /** selective: MDB entries per (group, member); flood: every peer gets everything. */
  readonly replication: Replication;
  /**
   * Node mode: the device carries frames that nftables moves in and out of host veths, so it
   * gets no address and no 224/4 or broadcast routes (the node's own stack must not use it);
   * only the blackhole route of the catch-all MDB entry. Default false (the sidecar's vx0).
   */
  readonly bare?: boolean;
  /**
   * Dual stack: the pod's IPv6 address. vx0 gets it too (/128, like the IPv4 /32: IPv6 picks a
   * multicast datagram's source among the outgoing device's own addresses only) and the route
   * that makes vx0 the device of IPv6 multicast sent or joined without an interface
   * (IPV6_MULTICAST_ROUTE), and --unregistered drop an IPv6 catch-all. Undefined (IPv4-only pods,
   * whose IPv6 is link-local at most): vx0 still receives IPv6 multicast, which floods.
   */
  readonly localIp6?: string | undefined;
  /**
   * The sidecar's eth0 capture is on (--capture on): apps' eth0 sends are moved into the device,
   * so on an IPv6 underlay eth0 gets IPV6_UNDERLAY_MTU_ROUTE. Off, eth0 is left as it is.
   */
  readonly capturesUnderlay?: boolean;
}

export interface OverlayPeer {
  readonly ip: string;
  /** Groups the peer's apps joined (as announced); link-local ones are ignored. */
  readonly groups: readonly string[];
}

export interface DesiredLink {
  readonly name: string;
  readonly vni: number;
  readonly port: number;
  readonly underlay: string;
  readonly local: string;
  readonly mtu: number;
}

export interface DesiredRoute {
  readonly type: 'unicast' | 'broadcast' | 'blackhole' | 'multicast';
  /** Without /32 for host routes, as `ip -j route` prints them. */
  readonly dst: string;
  readonly table: 'main' | 'local';
  readonly dev?: string;
  readonly src?: string;
  /** IPv6 routes: the metric, which tells ours apart from the kernel's route of the same prefix. */
  readonly metric?: number;
  /** The route's MTU (`mtu N`): what the kernel fragments sends through this route to. */
  readonly mtu?: number;
}

/**
 * IPv6 multicast sent or joined without an interface follows the route to the group, like IPv4's;
 * but IPv6 keeps its multicast routes in the local table, which is looked up before main, and
 * the kernel puts `multicast ff00::/8` there for every interface with IPv6 (eth0's and vx0's,
 * metric 256; the older wins: eth0). So vx0 gets a route of the same prefix in the local table
 * with a better metric. A socket that names an interface (IPV6_MULTICAST_IF, a join by index,
 * SO_BINDTODEVICE) gets that interface whatever the metric (the kernel's lookup is strict for
 * multicast); Neighbor Discovery and MLD always name theirs, so nothing of the pod's own IPv6
 * moves. Interface-local (ff01::/16) sends go to vx0 too, and the kernel never lets them out.
 */
export const IPV6_MULTICAST_ROUTE: Omit<DesiredRoute, 'dev'> = { type: 'multicast', dst: 'ff00::/8', table: 'local', metric: 1 };

/**
 * A pod interface's IPv6 multicast route with the MTU that crosses an IPv6 underlay, which never
 * fragments VXLAN. Sidecar, IPv6-only pod: eth0's, at vx0's MTU; an app that names eth0 and sends
 * a datagram whose fragments fill eth0 would otherwise have each captured fragment refused on its
 * way out, 70 bytes too long (Ip6FragFails). A better metric than the kernel's 256 and worse than
 * vx0's 1, so sends naming no interface still take vx0; the pod's kernel fragments eth0-named
 * sends to vx0's MTU before the capture moves them. Node mode gives it to member pods whose MTU
 * is over the carried size (node/pod-routes.ts), where it carries every multicast send. It also
 * applies to what stays on the interface (ND, MLD: small). Told from the kernel's and the CNI's
 * routes by its metric (plan.ts, underlayMtuRouteCommands).
 */
export const IPV6_UNDERLAY_MTU_ROUTE: Omit<DesiredRoute, 'dev' | 'mtu'> = { type: 'multicast', dst: 'ff00::/8', table: 'local', metric: 2 };

export interface MdbKey {
  readonly grp: string;
  readonly dst: string;
}

export interface DesiredState {
  readonly link: DesiredLink;
  readonly addrs: readonly string[];
  readonly routes: readonly DesiredRoute[];
  /** Flood (all-zero MAC) destinations: every peer, sorted; never the pod's own IP. */
  readonly fdb: readonly string[];
  readonly mdb: readonly MdbKey[];
}

export function desiredState(spec: OverlaySpec, peers: readonly OverlayPeer[]): DesiredState {
  const others = peers.filter((p) => p.ip !== spec.localIp);
  const routes: DesiredRoute[] = spec.bare
    ? []
    : [
        // Joins and sends with no interface named follow the route to the group: make it vx0.
        { type: 'unicast', dst: '224.0.0.0/4', table: 'main', dev: spec.device },
        { type: 'unicast', dst: '255.255.255.255', table: 'main', dev: spec.device },
      ];
  if (spec.localIp6 && !spec.bare) routes.push({ ...IPV6_MULTICAST_ROUTE, dev: spec.device });
  if (spec.localIp.includes(':') && spec.capturesUnderlay && !spec.bare) routes.push({ ...IPV6_UNDERLAY_MTU_ROUTE, dev: spec.underlay, mtu: spec.underlayMtu - vxlanOverhead(spec.localIp) });
  if (spec.broadcastAddress && !spec.bare) {
    routes.push({ type: 'broadcast', dst: spec.broadcastAddress, table: 'local', dev: spec.device, src: spec.localIp });
  }
  const mdb: MdbKey[] = [];
  if (spec.replication === 'selective') {
    for (const p of others) {
      // One spelling per group (STATE decodes to RFC 5952 already): the plan compares text.
      for (const g of new Set(p.groups.map((x) => canonicalGroup(x)))) {
        if (g !== undefined && isRoutableGroup(g)) mdb.push({ grp: g, dst: p.ip });
      }
    }
    if (spec.unregistered === 'drop') {
      // Catch-all entry: groups nobody joined go to a blackholed remote, so they reach nobody,
      // while broadcast and 224.0.0.x keep following the all-zero flood entries. Dual stack: the
      // IPv6 catch-all (grp ::) too; the kernel never applies it to link-local scope
      // (ffX2::, mDNS and SSDP; vxlan_mdb.c since 6.3, measured), which keeps flooding. The remote
      // is of the underlay's family (an IPv6 underlay's: 100::1). Node mode (bare) always carries
      // the IPv6 multicast its members send, so it always gets the IPv6 catch-all.
      const blackhole = blackholeFor(spec.localIp);
      routes.push({ type: 'blackhole', dst: blackhole, table: 'main' });
      mdb.push({ grp: '0.0.0.0', dst: blackhole });
      if (spec.localIp6 || spec.bare) mdb.push({ grp: '::', dst: blackhole });
    }
  }
  return {
    link: {
      name: spec.device,
      vni: spec.vni,
      port: spec.port,
      underlay: spec.underlay,
      local: spec.localIp,
      mtu: spec.underlayMtu - vxlanOverhead(spec.localIp),
    },
    // An IPv6-only pod's localIp is its IPv6 address (localIp6 too): one /128, no IPv4 address.
    addrs: spec.bare ? [] : [...new Set([`${spec.localIp}/${spec.localIp.includes(':') ? 128 : 32}`, ...(spec.localIp6 ? [`${spec.localIp6}/128`] : [])])],
    routes,
    fdb: sortIpv4(new Set(others.map((p) => p.ip))),
    mdb: sortMdb(mdb),
  };
}

export function mdbKey(e: MdbKey): string {
  return `${e.grp}>${e.dst}`;
}

export function sortMdb(entries: readonly MdbKey[]): MdbKey[] {
  return [...entries].sort((a, b) => mdbKey(a).localeCompare(mdbKey(b), 'en', { numeric: true }));
}
