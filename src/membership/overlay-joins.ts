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
 */
import dgram from 'node:dgram';
import type { Logger } from '../log.js';
import { sortIpv4 } from '../net/ipv4.js';

export class OverlayJoiner {
  /** Group -> the socket that holds its membership. */
  private readonly sockets = new Map<string, dgram.Socket>();

  constructor(private readonly log: Logger) {}

  /** The groups held. */
  groups(): string[] {
    return sortIpv4(this.sockets.keys());
  }

  has(group: string): boolean {
    return this.sockets.has(group);
  }

  private async open(): Promise<dgram.Socket> {
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    s.on('error', (err) => this.log.warn({ err }, 'overlay join socket error'));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, '127.0.0.1', () => {
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
      const s = await this.open();
      try {
        s.addMembership(g);
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
