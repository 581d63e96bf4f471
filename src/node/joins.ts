/**
 * The local members' joins: read from each member's own namespace (`ip -j maddr show`, the
 * groups on the pod's side of its veth, by ifindex), woken by maddress events.
 *
 * One listener for every member: `ip monitor maddress all-nsid` in the node's namespace receives
 * the events of every namespace that has an id there (a pod's namespace has one as soon as its
 * veth's peer is in the node's; netlink's NETLINK_LISTEN_ALL_NSID, which needs CAP_NET_BROADCAST
 * besides CAP_NET_ADMIN). Each event line starts with `[nsid N]`: only the member whose namespace
 * that is gets re-read, and only its namespace, never every member's. Without CAP_NET_BROADCAST
 * the watch falls back to one `ip -n NS monitor maddress` per member namespace (a process per
 * pod: about 2.8 MB each) and says so.
 *
 * Events are coalesced per namespace (JoinThrottle): the first event of a quiet namespace is read
 * at once (a join reaches the other nodes in milliseconds), later ones within `minIntervalMs` of
 * the last read are folded into one read when the interval ends, so a pod joining and leaving in
 * a loop costs at most one read per interval. The listener itself is read at a bounded pace
 * (JOIN_EVENT_LINES_PER_100MS); when the kernel drops events for it, every member is re-read
 * (at most once per JOIN_OVERFLOW_RESYNC_MS). The agent also re-reads every member periodically,
 * which covers a missed event or a listener that died.
 */
import { errorMessage } from '../errors.js';
import { IP_MONITOR, IpClient } from '../kernel/ip.js';
import type { MonitorHandle, Monitors } from '../kernel/monitor.js';
import type { Runner } from '../kernel/runner.js';
import type { Logger } from '../log.js';
import { isRoutableMulticast, sortIpv4 } from '../net/ipv4.js';
import type { LocalMember } from './members.js';

export const JOIN_MONITOR_ARGV: readonly string[] = IP_MONITOR.maddress;
export const JOIN_MONITOR_ALL_ARGV: readonly string[] = IP_MONITOR.maddressAllNsid;
/** After lost events, every member is re-read at most once per this (ms). */
export const JOIN_OVERFLOW_RESYNC_MS = 2000;
/** A namespace's joins are read at most once per this (ms) while its events keep coming. */
export const JOIN_READ_MIN_INTERVAL_MS = 100;
/**
 * The listener's lines read per 100 ms at most (a pod joining 100 groups at once is 200 lines).
 * Past it the listener is not read until the window ends: a pod joining and leaving in a tight
 * loop (over 200,000 events a second here) would otherwise cost the agent a core; the kernel
 * drops what the listener cannot queue and says so (ENOBUFS), and every member is re-read.
 */
export const JOIN_EVENT_LINES_PER_100MS = 200;

/** The namespace id an `all-nsid` event line starts with (`[nsid 3]...`), if any. Pure. */
export function eventNsid(line: string): number | undefined {
  const m = /^\[nsid (\d+)\]/.exec(line);
  return m ? Number(m[1]) : undefined;
}

/**
 * Per-namespace coalescing of events into reads. Pure (time is a parameter): `mark` records an
 * event, `take` returns the namespaces to read now and when to ask again for the rest.
 */
export class JoinThrottle {
  private readonly dirty = new Set<string>();
  private readonly lastRead = new Map<string, number>();

  constructor(private readonly minIntervalMs = JOIN_READ_MIN_INTERVAL_MS) {}

  mark(netns: string): void {
    this.dirty.add(netns);
  }

  /** Whether any namespace waits for a read. */
  get pending(): boolean {
    return this.dirty.size > 0;
  }

  /** The namespaces due at `now` (their read is recorded as done now); `retryAt` for the rest. */
  take(now: number): { due: string[]; retryAt: number | undefined } {
    const due: string[] = [];
    let retryAt: number | undefined;
    for (const ns of this.dirty) {
      const next = (this.lastRead.get(ns) ?? -Infinity) + this.minIntervalMs;
      if (next <= now) {
        due.push(ns);
        this.dirty.delete(ns);
        this.lastRead.set(ns, now);
      } else if (retryAt === undefined || next < retryAt) retryAt = next;
    }
    return { due, retryAt };
  }

  /** Forgets the namespaces `keep` does not want (members gone). */
  retain(keep: (netns: string) => boolean): void {
    for (const ns of this.dirty) if (!keep(ns)) this.dirty.delete(ns);
    for (const ns of this.lastRead.keys()) if (!keep(ns)) this.lastRead.delete(ns);
  }
}

export interface JoinWatchOptions {
  /** One `all-nsid` listener (the agent holds CAP_NET_BROADCAST) instead of one per namespace. */
  readonly allNsid: boolean;
}

export class JoinWatch {
  /** all-nsid mode: the one listener; per-namespace mode: one per namespace. */
  private all: MonitorHandle | undefined;
  private readonly monitors = new Map<string, MonitorHandle>();
  /** all-nsid mode: the node's id of each member namespace -> its name. */
  private byNsid = new Map<number, string>();

  constructor(
    private readonly runner: Runner,
    private readonly starter: Monitors,
    private readonly log: Logger,
    /** Called with the member namespace an maddress event came from. */
    private readonly onEvent: (netns: string) => void,
    private readonly options: JoinWatchOptions,
    /** Events were lost (the listener's socket overran): any member's joins may have changed. */
    private readonly onOverflow: () => void = () => undefined,
  ) {}

  get mode(): 'all-nsid' | 'per-namespace' {
    return this.options.allNsid ? 'all-nsid' : 'per-namespace';
  }

  /** The routable groups `m` joined (sorted), or undefined when they cannot be read (pod gone). */
  async read(m: LocalMember): Promise<string[] | undefined> {
    try {
      const groups = (await new IpClient(this.runner, m.netns).maddrsOfIndex(m.podIndex)).filter((g) => isRoutableMulticast(g));
      return sortIpv4(new Set(groups));
    } catch (err) {
      this.log.debug({ pod: m.ip, err: errorMessage(err) }, 'read joins failed (pod gone?)');
      return undefined;
    }
  }

  /**
   * Watches the namespaces of `members`: in all-nsid mode, (re)starts the one listener and maps
   * ids to names; otherwise one monitor per namespace, stopping the others and restarting the
   * ones that exited.
   */
  sync(members: Iterable<Pick<LocalMember, 'netns' | 'nsid'>>): void {
    const list = [...members];
    if (this.options.allNsid) {
      this.byNsid = new Map(list.flatMap((m) => (m.nsid === undefined ? [] : [[m.nsid, m.netns] as const])));
      if (this.all && !this.all.running) {
        this.log.warn({ argv: JOIN_MONITOR_ALL_ARGV }, 'maddress listener exited; restarted (joins were re-read periodically meanwhile)');
        this.all = undefined;
      }
      this.all ??= this.starter.start(JOIN_MONITOR_ALL_ARGV, undefined, (line) => this.onLine(line), {
        maxLinesPer100ms: JOIN_EVENT_LINES_PER_100MS,
        onOverflow: () => this.onOverflow(),
      });
      return;
    }
    const want = new Set(list.map((m) => m.netns));
    for (const [ns, h] of this.monitors) {
      if (!want.has(ns) || !h.running) {
        h.stop();
        this.monitors.delete(ns);
      }
    }
    for (const ns of want) {
      if (!this.monitors.has(ns))
        this.monitors.set(
          ns,
          this.starter.start(JOIN_MONITOR_ARGV, ns, () => this.onEvent(ns)),
        );
    }
  }

  private onLine(line: string): void {
    const id = eventNsid(line);
    if (id === undefined) return; // the node's own namespace, or a continuation line
    const ns = this.byNsid.get(id);
    if (ns !== undefined) this.onEvent(ns); // a namespace that holds no member costs nothing
  }

  /** Helper processes running for the watch. */
  get processes(): number {
    return this.options.allNsid ? (this.all?.running ? 1 : 0) : [...this.monitors.values()].filter((h) => h.running).length;
  }

  /** Namespaces watched now. */
  watched(): string[] {
    return this.options.allNsid ? [...this.byNsid.values()] : [...this.monitors.keys()];
  }

  stop(): void {
    this.all?.stop();
    this.all = undefined;
    for (const m of this.monitors.values()) m.stop();
    this.monitors.clear();
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

  constructor(private readonly read: (m: LocalMember) => Promise<string[] | undefined>) {}

  /** Reads `m`'s joins into `d.groups`; true when they were kept. */
  async readInto(d: { readonly label: string; readonly local: ReadonlyMap<string, LocalMember>; readonly groups: Map<string, string[]> }, m: LocalMember): Promise<boolean> {
    const seq = ++this.seq;
    const groups = await this.read(m);
    if (!groups || !sameMember(d.local.get(m.ip), m)) return false;
    const key = `${d.label}|${m.ip}`;
    if ((this.kept.get(key) ?? 0) > seq) return false;
    this.kept.set(key, seq);
    d.groups.set(m.ip, groups);
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
