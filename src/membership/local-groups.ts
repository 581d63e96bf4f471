/**
 * The groups this pod's apps joined on the overlay device, without snooping: the join watch
 * (runtime/join-watch.ts, the node agent's too, here listening in the pod's own namespace) wakes
 * us on a join/leave, and each wake re-reads `ip -j maddr` (the state, not the event, is the
 * truth); its throttle folds a burst of events into one read per interval, and its periodic and
 * lost-event re-reads repair a missed event or a dead listener.
 *
 * With an underlay (eth0), groups apps joined there count as joined too: the announced set is the
 * union, and an OverlayJoiner holds each of them on vx0 so the kernel accepts their datagrams
 * there. The joiner's own memberships are subtracted from vx0's join counts, so a leave on eth0
 * is a leave.
 *
 * Both families are read (`ip -j maddr` lists IPv6 groups as family inet6). What the kernel joins
 * by itself is no app's group and is never reported: 224.0.0.1, IPv6's all-nodes and all-routers
 * groups, Neighbor Discovery's solicited-node groups, and anything interface-local (it never
 * leaves the pod). Link-local groups (224.0.0.x, ff02::fb) are reported and held on vx0 but never
 * announced: STATE carries routable groups only (codec.ts), they flood.
 */
import { EventEmitter } from 'node:events';
import type { IpClient } from '../kernel/ip.js';
import type { Monitors } from '../kernel/monitor.js';
import type { Logger } from '../log.js';
import { canonicalGroup, familyOf, sortGroups } from '../net/groups.js';
import { isIpv6LinkLocalMulticast, isIpv6RoutableMulticast, isSolicitedNode } from '../net/ipv6.js';
import { JoinWatch } from '../runtime/join-watch.js';
import type { OverlayJoiner } from './overlay-joins.js';

/** All-hosts group: every IPv4 interface is in it; implicit, never announced. */
export const ALL_HOSTS = '224.0.0.1';
/**
 * IPv6 groups the kernel joins by itself: all-nodes (ff01::1, ff02::1, on every interface) and,
 * with forwarding on, all-routers (ff01::2, ff02::2, ff05::2).
 */
export const KERNEL_GROUPS6: ReadonlySet<string> = new Set(['ff01::1', 'ff02::1', 'ff01::2', 'ff02::2', 'ff05::2']);

/**
 * A group an app may have joined (canonical text): IPv4 but 224.0.0.1; IPv6 of link-local scope
 * or wider, but neither a group the kernel joins by itself nor a solicited-node group. Pure.
 */
export function isAppGroup(group: string): boolean {
  if (familyOf(group) === 4) return group !== ALL_HOSTS;
  if (!isIpv6LinkLocalMulticast(group) && !isIpv6RoutableMulticast(group)) return false;
  return !KERNEL_GROUPS6.has(group) && !isSolicitedNode(group);
}

/** The apps' groups among `joined` (any spelling), canonical and sorted (IPv4 first). Pure. */
export function announcedGroups(joined: Iterable<string>): string[] {
  const out: string[] = [];
  for (const g of joined) {
    const c = canonicalGroup(g);
    if (c !== undefined && isAppGroup(c)) out.push(c);
  }
  return sortGroups(out);
}

/** Join counts by canonical group (iproute2's IPv6 spelling is not guaranteed RFC 5952). Pure. */
export function canonicalUsers(users: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [g, n] of users) {
    const c = canonicalGroup(g);
    if (c !== undefined) out.set(c, (out.get(c) ?? 0) + n);
  }
  return out;
}

/**
 * Apps' groups on the overlay device: the groups joined there minus the joiner's own joins
 * (`users` counts every socket's join, canonical keys). Pure.
 */
export function appGroupsOnOverlay(users: ReadonlyMap<string, number>, ownJoins: ReadonlySet<string>): string[] {
  return announcedGroups([...users].filter(([g, n]) => n - (ownJoins.has(g) ? 1 : 0) > 0).map(([g]) => g));
}

export interface UnderlayOptions {
  /** The pod interface whose joins count too (eth0). */
  readonly underlay: string;
  /** Holds the underlay's groups on the overlay device. */
  readonly joiner: OverlayJoiner;
}

export interface LocalGroupsEvents {
  change: [groups: string[]];
}

export class LocalGroupsWatcher extends EventEmitter<LocalGroupsEvents> {
  private current: string[] = [];
  private perInterface: Record<string, string[]> = {};
  private watch: JoinWatch<{ readonly kind: 'namespace'; readonly netns: string | undefined; readonly key: string }> | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly ip: IpClient,
    /** Runs `ip monitor maddress` in the namespace of `ip`. */
    private readonly monitors: Monitors,
    private readonly device: string,
    private readonly log: Logger,
    private readonly resyncMs = 2000,
    private readonly underlay?: UnderlayOptions,
    /** Events were lost (the listener's socket overran): counted by the owner. */
    private readonly onLost: () => void = () => undefined,
  ) {
    super();
  }

  groups(): string[] {
    return this.current;
  }

  /** Apps' groups by the interface they joined on (the kernel's own groups excluded). */
  byInterface(): Record<string, string[]> {
    return this.perInterface;
  }

  async start(): Promise<void> {
    this.stopped = false;
    const watch = new JoinWatch({
      listen: { kind: 'namespace', netns: this.ip.netns, key: this.device },
      monitors: this.monitors,
      log: this.log,
      // One key: this pod's namespace. Due now, or at the end of the throttle's interval.
      onWake: () => {
        if (watch.due().length) void this.refresh();
      },
      onResync: () => void this.refresh(),
      onLost: this.onLost,
      resyncMs: this.resyncMs,
    });
    this.watch = watch;
    watch.start();
    await this.refresh();
  }

  stop(): void {
    this.stopped = true;
    this.watch?.stop();
    this.watch = undefined;
    this.underlay?.joiner.close();
  }

  /** Re-read now (coalesces concurrent calls: one read in flight, one queued). */
  async refresh(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return await this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        try {
          const next = await this.read();
          if (next === undefined) continue; // the joiner changed what we read: read again
          if (next.join() !== this.current.join()) {
            this.current = next;
            this.emit('change', next);
          }
        } catch (err) {
          this.log.warn({ err }, 'reading joined groups failed');
        }
      } while (this.again && !this.stopped);
    })();
    try {
      await this.reading;
    } finally {
      this.reading = undefined;
    }
  }

  private rounds = 0;

  /** The union of apps' groups, or undefined when the joiner just changed vx0 (read again). */
  private async read(): Promise<string[] | undefined> {
    if (!this.underlay) {
      const groups = announcedGroups((await this.ip.groupUsers(this.device))?.keys() ?? []);
      this.perInterface = { [this.device]: groups };
      return groups;
    }
    const { underlay, joiner } = this.underlay;
    const [rawUsers, onUnderlay] = await Promise.all([this.ip.groupUsers(this.device), this.ip.groupUsers(underlay)]);
    const users = rawUsers && canonicalUsers(rawUsers);
    const under = announcedGroups(onUnderlay?.keys() ?? []);
    if (users && !this.stopped && this.rounds < 3) {
      // vx0 re-created (or a join that went elsewhere): the joiner's memberships are gone; join afresh.
      if (joiner.groups().some((g) => !users.has(g))) joiner.reset();
      if (await joiner.set(under)) {
        this.rounds += 1;
        this.again = true;
        return undefined;
      }
    }
    this.rounds = 0;
    const own = new Set(joiner.groups());
    const overlay = users ? appGroupsOnOverlay(users, own) : [];
    this.perInterface = { [this.device]: overlay, [underlay]: under };
    return announcedGroups([...overlay, ...under]);
  }
}
