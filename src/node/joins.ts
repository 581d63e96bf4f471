/**
 * The local members' joins: read from each member's own namespace (`ip -j maddr show`, the
 * groups on the pod's side of its veth, by ifindex), when the join watch (runtime/join-watch.ts:
 * one `ip monitor maddress all-nsid` for every member, or one listener per member namespace
 * without CAP_NET_BROADCAST) says that namespace changed, and by the periodic re-read.
 */
import { errorMessage } from '../errors.js';
import { IpClient } from '../kernel/ip.js';
import type { Runner } from '../kernel/runner.js';
import type { Logger } from '../log.js';
import { isRoutableMulticast, sortIpv4 } from '../net/ipv4.js';
import type { LocalMember } from './members.js';

/** The routable groups `m` joined (sorted), or undefined when they cannot be read (pod gone). */
export async function readMemberJoins(runner: Runner, log: Logger, m: LocalMember): Promise<string[] | undefined> {
  try {
    const groups = (await new IpClient(runner, m.netns).maddrsOfIndex(m.podIndex)).filter((g) => isRoutableMulticast(g));
    return sortIpv4(new Set(groups));
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
