/**
 * The join watch both agents use: what wakes a re-read of the groups joined in a namespace. The
 * state, never the event, is the truth: an `ip monitor maddress` line only says "this namespace
 * changed", and the owner re-reads it (`ip -j maddr`). Three ways to listen, one watch:
 *
 * - `namespace`: the sidecar, one listener in its own namespace; every IPv4 line is that
 *   namespace's (one key);
 * - `all-nsid`: the node agent, one `ip monitor maddress all-nsid` in the node's namespace for
 *   every member (netlink's NETLINK_LISTEN_ALL_NSID, which needs CAP_NET_BROADCAST besides
 *   CAP_NET_ADMIN): each line starts with `[nsid N]`, and only the namespace of that id is woken;
 * - `per-namespace`: the node agent without CAP_NET_BROADCAST, one listener per member namespace
 *   (a process per pod, about 2.8 MB each).
 *
 * What is common to all three:
 * - events are coalesced per namespace (JoinThrottle): the first event of a quiet namespace is
 *   due at once, later ones within `minIntervalMs` of its last read are folded into one read when
 *   the interval ends (a timer wakes the owner then), so a pod joining and leaving in a loop
 *   costs at most one read per interval;
 * - listeners are read at a bounded pace (JOIN_EVENT_LINES_PER_100MS); when the kernel drops
 *   events for one (ENOBUFS), every namespace is re-read (`onResync`), at most once per
 *   JOIN_OVERFLOW_RESYNC_MS;
 * - every namespace is re-read every `resyncMs` too, which covers a missed event or a listener
 *   that died; a listener that exits is restarted after a pause (and at the next `sync`).
 *
 * The owner is woken (`onWake`) and asks which namespaces are due (`due()`), so events that come
 * while it is busy are folded into its next read. Pure of argv: the listeners' command lines are
 * IP_MONITOR's (src/kernel/ip.ts), started through Monitors (src/kernel/monitor.ts).
 */
import { IP_MONITOR } from '../kernel/ip.js';
import type { MonitorHandle, Monitors } from '../kernel/monitor.js';
import type { Logger } from '../log.js';

/** After lost events, every namespace is re-read at most once per this (ms). */
export const JOIN_OVERFLOW_RESYNC_MS = 2000;
/** A namespace's joins are read at most once per this (ms) while its events keep coming. */
export const JOIN_READ_MIN_INTERVAL_MS = 100;
/**
 * The listener's lines read per 100 ms at most (a pod joining 100 groups at once is 200 lines).
 * Past it the listener is not read until the window ends: a pod joining and leaving in a tight
 * loop (over 200,000 events a second here) would otherwise cost the agent a core; the kernel
 * drops what the listener cannot queue and says so (ENOBUFS), and every namespace is re-read.
 */
export const JOIN_EVENT_LINES_PER_100MS = 200;
/** A listener that exited by itself is started again after this (ms). */
export const JOIN_LISTENER_RESTART_MS = 1000;

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

export type JoinListen =
  /** One namespace (undefined: this process's own); its events are `key`'s. */
  | { readonly kind: 'namespace'; readonly netns: string | undefined; readonly key: string }
  /** One listener for every namespace with an id here (CAP_NET_BROADCAST). */
  | { readonly kind: 'all-nsid' }
  /** One listener per namespace. */
  | { readonly kind: 'per-namespace' };

export interface JoinWatchOptions<L extends JoinListen = JoinListen> {
  readonly listen: L;
  readonly monitors: Monitors;
  readonly log: Logger;
  /** Events are due, or will be at the end of a throttle interval: call `due()`. */
  readonly onWake: () => void;
  /** Re-read every namespace: events were lost, or the periodic re-read. */
  readonly onResync: () => void;
  /** Events were lost (counted by the owner). */
  readonly onLost?: () => void;
  /** The periodic re-read of every namespace (ms); none when undefined. */
  readonly resyncMs?: number;
  readonly minIntervalMs?: number;
}

/** A namespace to watch: its name and, for all-nsid, its id in this namespace. */
export interface WatchedNamespace {
  readonly netns: string;
  readonly nsid?: number;
}

export class JoinWatch<L extends JoinListen = JoinListen> {
  /** namespace / all-nsid: the one listener. */
  private one: MonitorHandle | undefined;
  /** per-namespace: one listener per namespace. */
  private readonly perNs = new Map<string, MonitorHandle>();
  /** all-nsid: the id of each watched namespace -> its name. */
  private byNsid = new Map<number, string>();
  private readonly throttle: JoinThrottle;
  private retry: NodeJS.Timeout | undefined;
  private overflow: NodeJS.Timeout | undefined;
  private periodic: NodeJS.Timeout | undefined;
  private lastResync = 0;
  private stopped = false;

  constructor(private readonly o: JoinWatchOptions<L>) {
    this.throttle = new JoinThrottle(o.minIntervalMs);
  }

  get mode(): L['kind'] {
    return this.o.listen.kind;
  }

  /** Starts the periodic re-read, and the listener of a `namespace` watch. */
  start(): void {
    this.stopped = false;
    if (this.o.listen.kind === 'namespace') this.sync([]);
    if (this.o.resyncMs !== undefined && !this.periodic) {
      this.periodic = setInterval(() => this.resync(), this.o.resyncMs);
      this.periodic.unref();
    }
  }

  /**
   * Watches `namespaces` (node modes; a `namespace` watch has its one): all-nsid maps ids to names
   * and (re)starts the one listener; per-namespace starts the missing listeners and stops those
   * of namespaces gone. A listener that exited is restarted.
   */
  sync(namespaces: Iterable<WatchedNamespace>): void {
    if (this.stopped) return;
    const list = [...namespaces];
    const listen: JoinListen = this.o.listen;
    if (listen.kind === 'per-namespace') {
      const want = new Set(list.map((n) => n.netns));
      for (const [ns, h] of this.perNs) {
        if (!want.has(ns) || !h.running) {
          h.stop();
          this.perNs.delete(ns);
        }
      }
      for (const ns of want)
        if (!this.perNs.has(ns))
          this.perNs.set(
            ns,
            this.listen(IP_MONITOR.maddress, ns, () => this.event(ns)),
          );
      this.throttle.retain((ns) => want.has(ns));
      return;
    }
    if (listen.kind === 'all-nsid') {
      this.byNsid = new Map(list.flatMap((n) => (n.nsid === undefined ? [] : [[n.nsid, n.netns] as const])));
      const names = new Set(list.map((n) => n.netns));
      this.throttle.retain((ns) => names.has(ns));
    }
    if (this.one && !this.one.running) {
      this.o.log.warn({ watch: this.mode }, 'maddress listener exited; restarted (joins were re-read periodically meanwhile)');
      this.one = undefined;
    }
    this.one ??=
      listen.kind === 'namespace'
        ? this.listen(IP_MONITOR.maddressOneline, listen.netns, (line) => {
            if (line.includes(' inet ')) this.event(listen.key);
          })
        : this.listen(IP_MONITOR.maddressAllNsid, undefined, (line) => {
            const id = eventNsid(line);
            if (id === undefined) return; // this namespace's own, or a continuation line
            const ns = this.byNsid.get(id);
            if (ns !== undefined) this.event(ns); // a namespace no one watches costs nothing
          });
  }

  private listen(argv: readonly string[], netns: string | undefined, onLine: (line: string) => void): MonitorHandle {
    const handle: MonitorHandle = this.o.monitors.start(argv, netns, onLine, {
      maxLinesPer100ms: JOIN_EVENT_LINES_PER_100MS,
      onOverflow: () => this.lost(),
      onError: (err) => this.o.log.warn({ err, argv }, 'ip monitor maddress failed; relying on periodic re-reads'),
      onExit: () => {
        if (this.stopped) return;
        // Started again after a pause; the periodic re-read covers the gap.
        setTimeout(() => {
          if (!this.stopped && !handle.running) this.restart(handle);
        }, JOIN_LISTENER_RESTART_MS).unref();
      },
    });
    return handle;
  }

  private restart(handle: MonitorHandle): void {
    if (this.one === handle) this.sync(this.o.listen.kind === 'all-nsid' ? [...this.byNsid].map(([nsid, netns]) => ({ netns, nsid })) : []);
    else
      for (const [ns, h] of this.perNs)
        if (h === handle) {
          this.perNs.delete(ns);
          this.perNs.set(
            ns,
            this.listen(IP_MONITOR.maddress, ns, () => this.event(ns)),
          );
        }
  }

  private event(netns: string): void {
    this.throttle.mark(netns);
    this.o.onWake();
  }

  /**
   * The namespaces whose events are due now (each is recorded as read now). Events of a namespace
   * read less than the interval ago stay for a timer that wakes the owner when they are due.
   */
  due(now = Date.now()): string[] {
    const { due, retryAt } = this.throttle.take(now);
    if (retryAt !== undefined && !this.retry && !this.stopped) {
      this.retry = setTimeout(
        () => {
          this.retry = undefined;
          this.o.onWake();
        },
        Math.max(0, retryAt - now),
      );
      this.retry.unref();
    }
    return due;
  }

  /** Events were lost: every namespace re-read, at most once per JOIN_OVERFLOW_RESYNC_MS. */
  private lost(): void {
    this.o.onLost?.();
    if (this.overflow || this.stopped) return;
    this.overflow = setTimeout(
      () => {
        this.overflow = undefined;
        this.resync();
      },
      Math.max(0, this.lastResync + JOIN_OVERFLOW_RESYNC_MS - Date.now()),
    );
    this.overflow.unref();
  }

  private resync(): void {
    if (this.stopped) return;
    this.lastResync = Date.now();
    this.o.onResync();
  }

  /** Helper processes running for the watch. */
  get processes(): number {
    return this.mode === 'per-namespace' ? [...this.perNs.values()].filter((h) => h.running).length : this.one?.running ? 1 : 0;
  }

  /** Namespaces watched now. */
  watched(): string[] {
    const listen: JoinListen = this.o.listen;
    if (listen.kind === 'namespace') return [listen.netns ?? listen.key];
    return listen.kind === 'all-nsid' ? [...this.byNsid.values()] : [...this.perNs.keys()];
  }

  stop(): void {
    this.stopped = true;
    for (const t of [this.retry, this.overflow]) if (t) clearTimeout(t);
    if (this.periodic) clearInterval(this.periodic);
    this.retry = this.overflow = this.periodic = undefined;
    this.one?.stop();
    this.one = undefined;
    for (const h of this.perNs.values()) h.stop();
    this.perNs.clear();
  }
}
