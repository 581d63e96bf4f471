/**
 * The agent's own memberships on the overlay device, for groups apps joined on eth0. Datagrams
 * arrive on vx0, and the kernel accepts a group's datagrams on a device only when someone joined
 * it there; a socket bound to the port then receives them whatever interface it joined on (the
 * default IP_MULTICAST_ALL). So the agent joins each such group on vx0 itself, from a socket per
 * group bound to 127.0.0.1 (it never receives the traffic): Linux holds at most
 * net.ipv4.igmp_max_memberships (20 by default) groups per socket, and with one socket for all a
 * pod's 21st group got no traffic.
 *
 * Node's addMembership names the interface only by address, and the pod IP is on both eth0 and
 * vx0; without an address the kernel picks the device of the route to the group, which the agent
 * keeps at vx0 (224.0.0.0/4 dev vx0). The watcher checks the result on the next read of vx0 and
 * resets (re-joins everything) when a group it joined is missing there, e.g. after vx0 was
 * re-created, which drops every membership on it.
 *
 * IPv6 groups are joined from a udp6 socket bound to ::1, naming vx0 itself: Node takes an IPv6
 * interface as `::%vx0` (the zone becomes the interface index of struct ipv6_mreq), so the join
 * lands on vx0 whatever the routes say, exactly as the apps' own eth0 joins name their device.
 */
import dgram from 'node:dgram';
import type { Logger } from '../log.js';
import { familyOf, sortGroups } from '../net/groups.js';

export class OverlayJoiner {
  /** Group -> the socket that holds its membership. */
  private readonly sockets = new Map<string, dgram.Socket>();

  constructor(
    private readonly log: Logger,
    /** The overlay device IPv6 groups are joined on by name. */
    private readonly device = 'vx0',
  ) {}

  /** The groups held (canonical text, IPv4 first). */
  groups(): string[] {
    return sortGroups(this.sockets.keys());
  }

  has(group: string): boolean {
    return this.sockets.has(group);
  }

  private async open(v6: boolean): Promise<dgram.Socket> {
    const s = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', reuseAddr: false });
    s.on('error', (err) => this.log.warn({ err }, 'overlay join socket error'));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, v6 ? '::1' : '127.0.0.1', () => {
        s.off('error', reject);
        resolve();
      });
    });
    return s;
  }

  /** Joins and leaves so that exactly `want` is held; returns true when anything changed. */
  async set(want: readonly string[]): Promise<boolean> {
    const next = new Set(want);
    const add = [...next].filter((g) => !this.sockets.has(g));
    const drop = [...this.sockets.keys()].filter((g) => !next.has(g));
    if (!add.length && !drop.length) return false;
    for (const g of drop) {
      // Closing the socket leaves its group (or nothing, when vx0 was re-created meanwhile).
      this.sockets.get(g)?.close();
      this.sockets.delete(g);
    }
    for (const g of add) {
      const v6 = familyOf(g) === 6;
      let s: dgram.Socket;
      try {
        s = await this.open(v6);
      } catch (err) {
        this.log.warn({ group: g, err }, 'join on the overlay failed: no socket');
        continue;
      }
      try {
        if (v6) s.addMembership(g, `::%${this.device}`);
        else s.addMembership(g);
        this.sockets.set(g, s);
      } catch (err) {
        s.close();
        this.log.warn({ group: g, err }, 'join on the overlay failed');
      }
    }
    if (add.length || drop.length) this.log.info({ joined: add, left: drop }, 'overlay memberships for groups joined on the pod interface');
    return true;
  }

  /** Drops every membership with its socket; the next set() joins afresh. */
  reset(): void {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }

  close(): void {
    this.reset();
  }
}
