/**
 * The local members' joins: read from each member's own namespace (the groups of both families
 * on the pod's side of its veth, by ifindex, and its global IPv6 addresses, one process), when the join watch (runtime/join-watch.ts:
 * one `ip monitor maddress all-nsid` for every member, or one listener per member namespace
 * without CAP_NET_BROADCAST) says that namespace changed, and by the periodic re-read.
 */
import { errorMessage } from '../errors.js';
import { IpClient } from '../kernel/ip.js';
import type { Monitors } from '../kernel/monitor.js';
import type { Runner } from '../kernel/runner.js';
import type { Logger } from '../log.js';
import { canonicalGroup, isRoutableGroup, sortGroups } from '../net/groups.js';
import { canonicalIpv6 } from '../net/ipv6.js';
import { JoinWatch } from '../runtime/join-watch.js';
import { forEachLimit } from '../runtime/limit.js';
import type { LocalMember } from './members.js';

/**
 * The periodic re-read of every member runs this many reads at once: 110 `ip maddr` processes
 * started together took the CPU from the one read an event waits for (a join's latency met the
 * re-read's burst), and four at a time still slowed every join in its second. One at a time, like
 * the full pass's own processes: the background lane adds one process to the CPU's queue, and
 * takes a second or two at 110 members every --joins-interval. A full pass's reads of new members
 * (all of them at a start) are not held back: the members' programming waits for them.
 */
export const BULK_READS_IN_FLIGHT = 1;

/** What a read of a member's namespace finds: the routable groups it joined, its global IPv6 addresses. */
export interface MemberRead {
  readonly groups: string[];
  readonly ipv6: string[];
}

/**
 * The routable groups of both families `m` joined (sorted, canonical) and the global IPv6
 * addresses of its eth0, from one process; undefined when they cannot be read (pod gone).
 */
export async function readMemberJoins(runner: Runner, log: Logger, m: LocalMember): Promise<MemberRead | undefined> {
  try {
    const got = await new IpClient(runner, m.netns).groupsAndIpv6OfIndex(m.podIndex);
    const groups = got.groups.map((g) => canonicalGroup(g)).filter((g): g is string => g !== undefined && isRoutableGroup(g));
    const ipv6 = got.ipv6.map((a) => canonicalIpv6(a)).filter((a): a is string => a !== undefined);
    return { groups: sortGroups(groups), ipv6: [...new Set(ipv6)].sort() };
  } catch (err) {
    log.debug({ pod: m.ip, err: errorMessage(err) }, 'read joins failed (pod gone?)');
    return undefined;
  }
}

/** The member a read was for is still the domain's member of that IP (same pod namespace and interface). */
function sameMember(a: LocalMember | undefined, b: LocalMember): boolean {
  return a !== undefined && a.netns === b.netns && a.podIndex === b.podIndex;
}

/**
 * A member's joins read into its domain, when reads may overlap: a joins pass runs beside a full
 * pass (runtime/pass-queue.ts, lanes), so two reads of one member can be in flight and end in
 * either order. A read's groups are kept only when no read of the member started after it was
 * kept already (a slow old read never undoes a newer one: no lost join), and only when the
 * member is still the one read (a pod gone or re-created meanwhile keeps no stale groups).
 */
export class MemberJoinReads {
  private seq = 0;
  /** `domain label|member IP` -> the start number of the read last kept. */
  private readonly kept = new Map<string, number>();

  constructor(private readonly read: (m: LocalMember) => Promise<MemberRead | undefined>) {}

  /** Reads `m`'s joins into `d.groups` (and its IPv6 addresses into `d.ipv6`); true when they were kept. */
  async readInto(d: JoinDomain, m: LocalMember): Promise<boolean> {
    const seq = ++this.seq;
    const got = await this.read(m);
    if (!got || !sameMember(d.local.get(m.ip), m)) return false;
    const key = `${d.label}|${m.ip}`;
    if ((this.kept.get(key) ?? 0) > seq) return false;
    this.kept.set(key, seq);
    d.groups.set(m.ip, got.groups);
    d.ipv6.set(m.ip, got.ipv6);
    return true;
  }

  /** Forgets members `keep` does not want (gone). */
  retain(keep: (label: string, ip: string) => boolean): void {
    for (const key of this.kept.keys()) {
      const i = key.lastIndexOf('|');
      if (!keep(key.slice(0, i), key.slice(i + 1))) this.kept.delete(key);
    }
  }
}

/** A domain as the member joins see it. */
export interface JoinDomain {
  readonly label: string;
  readonly local: ReadonlyMap<string, LocalMember>;
  readonly groups: Map<string, string[]>;
  /** Member IP -> its global IPv6 addresses (what its veth may send from). */
  readonly ipv6: Map<string, string[]>;
}

export interface MemberJoinsOptions {
  readonly runner: Runner;
  readonly monitors: Monitors;
  readonly log: Logger;
  /** One all-nsid listener (the agent holds CAP_NET_BROADCAST), or one per member namespace. */
  readonly allNsid: boolean;
  /** A member namespace's events are due: run a joins pass (which calls readDue). */
  readonly onEvents: () => void;
  /** Every member must be re-read (periodic, or events lost): run a pass that calls readAll. */
  readonly onResync: () => void;
  /** The periodic re-read of every member (ms). */
  readonly resyncMs: number;
  /** A read of a member's joins, by cause; events lost by the listener. */
  readonly counted?: { readonly read: (cause: 'event' | 'resync') => void; readonly lost: () => void };
}

/**
 * The local members' joins, watched and read: the join watch over the members' namespaces
 * (runtime/join-watch.ts) and the reads into each domain's `groups` (MemberJoinReads), which the
 * node agent's passes call: `readNew` (a full pass, members not read yet), `readDue` (a joins
 * pass, the namespaces with events), `readAll` (the periodic re-read).
 */
export class MemberJoins {
  private readonly watch: JoinWatch<{ readonly kind: 'all-nsid' } | { readonly kind: 'per-namespace' }>;
  private readonly reads: MemberJoinReads;
  private count = 0;

  constructor(private readonly o: MemberJoinsOptions) {
    this.watch = new JoinWatch({
      listen: o.allNsid ? { kind: 'all-nsid' } : { kind: 'per-namespace' },
      monitors: o.monitors,
      log: o.log,
      onWake: o.onEvents,
      onResync: o.onResync,
      ...(o.counted ? { onLost: o.counted.lost } : {}),
      resyncMs: o.resyncMs,
    });
    this.reads = new MemberJoinReads(async (m) => await readMemberJoins(o.runner, o.log, m));
  }

  /** Starts the periodic re-read (the listeners start with the first `sync`). */
  start(): void {
    this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  /** Watches the namespaces of the domains' members now; forgets the members gone. */
  sync(domains: readonly JoinDomain[]): void {
    this.watch.sync(domains.flatMap((d) => [...d.local.values()]));
    this.reads.retain((label, ip) => domains.some((d) => d.label === label && d.local.has(ip)));
  }

  /** Members not read yet (new, or a pod re-created on the same IP). */
  async readNew(domains: readonly JoinDomain[]): Promise<void> {
    await this.read(domains, (m, d) => !d.groups.has(m.ip), 'resync', Infinity);
  }

  /**
   * The namespaces whose events are due (a namespace read less than the throttle's interval ago
   * waits for a timer, so a pod that joins and leaves in a loop costs one read per interval,
   * never a read of the other members).
   */
  async readDue(domains: readonly JoinDomain[]): Promise<void> {
    const due = new Set(this.watch.due());
    if (due.size) await this.read(domains, (m) => due.has(m.netns), 'event', Infinity);
  }

  /** Every member. */
  async readAll(domains: readonly JoinDomain[]): Promise<void> {
    await this.read(domains, () => true, 'resync', BULK_READS_IN_FLIGHT);
  }

  private async read(domains: readonly JoinDomain[], which: (m: LocalMember, d: JoinDomain) => boolean, cause: 'event' | 'resync', inFlight: number): Promise<void> {
    const todo = domains.flatMap((d) => [...d.local.values()].filter((m) => which(m, d)).map((m) => ({ d, m })));
    await forEachLimit(todo, Math.min(inFlight, todo.length), async ({ d, m }) => {
      this.count++;
      this.o.counted?.read(cause);
      await this.reads.readInto(d, m);
    });
  }

  /** For /status: how the joins are watched, the helper processes, the reads since start. */
  status(): { mode: 'all-nsid' | 'per-namespace'; processes: number; reads: number } {
    return { mode: this.watch.mode, processes: this.watch.processes, reads: this.count };
  }
}
