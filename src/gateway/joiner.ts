/**
 * The gateway's joins on the outside interface: one UDP socket per group with IP_ADD_MEMBERSHIP on
 * the interface's address, so the kernel sends the IGMP reports (and answers the queriers) that
 * make an upstream switch or router send the stream. The sockets never read a datagram: the
 * gateway's ingress chain takes the groups' traffic before the node's stack. Closing a socket
 * leaves its group (an IGMP leave goes out).
 *
 * One socket per group keeps every join independent of Linux's per-socket membership limit
 * (net.ipv4.igmp_max_memberships, 20 by default); the number of groups is bounded by
 * --gateway-max-joins (which groups, when more are wanted: chooseJoins in groups.ts).
 *
 * IPv6 groups the same way, each on a udp6 socket joined with IPV6_JOIN_GROUP on the interface's
 * index (Node names it `::%IF`), so the kernel sends the MLD reports; the IPv6 and IPv4 joins
 * count together against --gateway-max-joins.
 */
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { familyOf } from '../net/groups.js';

export interface JoinFailure {
  readonly group: string;
  readonly error: string;
}

export class GroupJoiner {
  private readonly sockets = new Map<string, Socket>();
  private readonly failed = new Map<string, string>();
  private address = '';
  private iface = '';

  constructor(private readonly log: Logger) {}

  /** Groups joined now, sorted as given to `sync`. */
  get joined(): string[] {
    return [...this.sockets.keys()];
  }

  get failures(): JoinFailure[] {
    return [...this.failed].map(([group, error]) => ({ group, error }));
  }

  /**
   * Joins `groups` (already chosen, see chooseJoins) on the interface `iface` with IPv4 address
   * `address` and leaves every other group.
   */
  async sync(address: string, groups: readonly string[], iface = this.iface): Promise<void> {
    if (address !== this.address || iface !== this.iface) {
      this.leaveAll();
      this.address = address;
      this.iface = iface;
    }
    const want = new Set(groups);
    for (const [g, s] of this.sockets) {
      if (want.has(g)) continue;
      s.close();
      this.sockets.delete(g);
      this.log.info({ group: g }, 'gateway left group on the outside interface');
    }
    for (const g of [...this.failed.keys()]) if (!want.has(g)) this.failed.delete(g);
    for (const g of want) {
      if (this.sockets.has(g)) continue;
      try {
        this.sockets.set(g, await this.join(g));
        this.failed.delete(g);
        this.log.info({ group: g, address }, 'gateway joined group on the outside interface');
      } catch (err) {
        this.failed.set(g, errorMessage(err));
        this.log.warn({ group: g, address, err: errorMessage(err) }, 'gateway join failed; retrying at the next pass');
      }
    }
  }

  private async join(group: string): Promise<Socket> {
    const v6 = familyOf(group) === 6;
    const s = createSocket({ type: v6 ? 'udp6' : 'udp4', reuseAddr: true });
    s.on('message', () => undefined);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind({ port: 0, address: v6 ? '::' : '0.0.0.0' }, () => {
        s.off('error', reject);
        resolve();
      });
    });
    s.on('error', (err) => this.log.warn({ group, err: errorMessage(err) }, 'gateway join socket error'));
    try {
      s.addMembership(group, v6 ? `::%${this.iface}` : this.address);
    } catch (err) {
      s.close();
      throw err;
    }
    return s;
  }

  leaveAll(): void {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
    this.failed.clear();
  }
}
