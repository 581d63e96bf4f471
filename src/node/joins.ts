/**
 * The local members' joins: read from each member's own namespace (`ip -j maddr show`, the
 * groups on the pod's side of its veth, by ifindex) and watched with one `ip monitor maddress`
 * per member namespace, whose lines only wake a re-read (the agent also re-reads periodically,
 * which covers a missed event or a monitor that died).
 */
import { errorMessage } from '../errors.js';
import { IpClient } from '../iproute2/client.js';
import type { MonitorHandle, Monitors } from '../iproute2/monitor.js';
import type { Runner } from '../iproute2/runner.js';
import type { Logger } from '../log.js';
import { isRoutableMulticast, sortIpv4 } from '../net/ipv4.js';
import type { LocalMember } from './members.js';

export const JOIN_MONITOR_ARGV: readonly string[] = ['ip', 'monitor', 'maddress'];

export class JoinWatch {
  private readonly monitors = new Map<string, MonitorHandle>();

  constructor(
    private readonly runner: Runner,
    private readonly starter: Monitors,
    private readonly log: Logger,
    /** Called on any maddress event in a member namespace. */
    private readonly onEvent: () => void,
  ) {}

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

  /** One monitor per namespace in `netnses`: stops the others, restarts the ones that exited. */
  sync(netnses: Iterable<string>): void {
    const want = new Set(netnses);
    for (const [ns, h] of this.monitors) {
      if (!want.has(ns) || !h.running) {
        h.stop();
        this.monitors.delete(ns);
      }
    }
    for (const ns of want) {
      if (!this.monitors.has(ns)) this.monitors.set(ns, this.starter.start(JOIN_MONITOR_ARGV, ns, () => this.onEvent()));
    }
  }

  /** Namespaces watched now. */
  watched(): string[] {
    return [...this.monitors.keys()];
  }

  stop(): void {
    for (const m of this.monitors.values()) m.stop();
    this.monitors.clear();
  }
}
