/**
 * Node mode on an IPv6 underlay: the member pods' IPv6 multicast route MTU. VXLAN over IPv6 adds
 * 70 bytes and the kernel never fragments it (underlay.ts), so a pod whose MTU is its node's would
 * send datagram fragments no other node gets. The agent gives such a pod's interface the route
 * the sidecar gives eth0 (IPV6_UNDERLAY_MTU_ROUTE: `multicast ff00::/8 table local metric 2 mtu
 * <carried>`, one rule in overlay/plan.ts), so the pod's own kernel fragments its multicast to
 * what the underlay carries; its unicast keeps the CNI's MTU. Nothing else in the pod is touched,
 * and a pod that fits, or an IPv4 underlay (which fragments VXLAN), costs no read at all.
 */
import { errorMessage } from '../errors.js';
import type { IpClient } from '../kernel/ip.js';
import type { Logger } from '../log.js';
import { underlayMtuRouteCommands } from '../overlay/plan.js';

export interface RoutedMember {
  readonly ip: string;
  /** The pod's namespace name and its interface's index there. */
  readonly netns: string;
  readonly podIndex: number;
  /** The host veth's MTU (the pod side's, as CNIs set both), when known. */
  readonly mtu?: number | undefined;
}

interface Installed {
  readonly netns: string;
  readonly podIndex: number;
  readonly dev: string;
  readonly mtu: number;
}

export class PodMtuRoutes {
  /** By member IP: where our route is, and its MTU. */
  private readonly installed = new Map<string, Installed>();

  constructor(
    private readonly forNetns: (netns: string) => IpClient,
    private readonly log: Logger,
  ) {}

  /** The MTU of the route set in the pod of member `ip`, if one is. */
  mtuOf(ip: string): number | undefined {
    return this.installed.get(ip)?.mtu;
  }

  /**
   * Gives every member whose MTU exceeds `carried` the route, re-checks the ones that have it
   * (drift is repaired), and removes it from members that left or now fit. `carried` undefined:
   * an IPv4 underlay, no route anywhere. A pod that cannot be read or written is logged and
   * tried again at the next pass; the others go on.
   */
  async sync(members: readonly RoutedMember[], carried: number | undefined): Promise<void> {
    const current = new Set<string>();
    for (const m of members) {
      current.add(m.ip);
      const had = this.installed.get(m.ip);
      const moved = had !== undefined && (had.netns !== m.netns || had.podIndex !== m.podIndex);
      if (moved) this.installed.delete(m.ip); // a re-created pod: its new namespace has no route of ours
      if (carried === undefined || (m.mtu !== undefined && m.mtu <= carried && !this.installed.has(m.ip))) continue;
      await this.syncOne(m, carried).catch((err: unknown) =>
        this.log.warn({ pod: m.ip, netns: m.netns, err: errorMessage(err) }, "setting the pod's IPv6 multicast route MTU failed; retried at the next pass"),
      );
    }
    for (const [ip, r] of this.installed) {
      if (current.has(ip)) continue;
      this.installed.delete(ip);
      await this.remove(r).catch(() => undefined); // the pod is usually gone with its namespace
    }
  }

  /** Removes every route this agent set (uninstall). */
  async removeAll(): Promise<void> {
    for (const r of this.installed.values()) await this.remove(r).catch(() => undefined);
    this.installed.clear();
  }

  private async syncOne(m: RoutedMember, carried: number): Promise<void> {
    const ip = this.forNetns(m.netns);
    const link = (await ip.links({ all: true })).find((l) => l.ifindex === m.podIndex);
    if (!link) return;
    const mtu = link.mtu ?? m.mtu;
    const want = mtu !== undefined && mtu > carried ? carried : undefined;
    const lines = underlayMtuRouteCommands(await ip.routes6(), link.name, want);
    if (lines.length) {
      await ip.ipBatch(lines);
      if (want !== undefined) {
        this.log.info(
          { pod: m.ip, netns: m.netns, dev: link.name, podMtu: mtu, multicastMtu: want },
          'pod MTU over what the IPv6 underlay carries: its IPv6 multicast route MTU set, so its kernel fragments to fit',
        );
      }
    }
    if (want === undefined) this.installed.delete(m.ip);
    else this.installed.set(m.ip, { netns: m.netns, podIndex: m.podIndex, dev: link.name, mtu: want });
  }

  private async remove(r: Installed): Promise<void> {
    const ip = this.forNetns(r.netns);
    await ip.ipBatch(underlayMtuRouteCommands(await ip.routes6(), r.dev, undefined));
  }
}
