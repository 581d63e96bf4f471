/**
 * What this node tells its peer nodes about each domain: STATE with the groups its members (and,
 * for the active gateway, the outside network) joined, or LEAVE when it has no member left. One
 * Announcer per domain (membership/announcer.ts, the sidecar's), over the node's control socket:
 * both modes cap a set of groups the same way, report it the same way, and never throw.
 *
 * Who decides what: a domain's first announcement (and a LEAVE) follows a full pass, which has
 * read its new members' joins; a joins pass only sends a changed set of a domain announced
 * already (`changesOnly`), so a STATE never says "no groups" for members whose joins were not
 * read yet.
 */
import type { Logger } from '../log.js';
import { Announcer } from '../membership/announcer.js';
import { NODE_LOCAL_STATE } from './control.js';
import type { DomainRuntime } from './domain.js';
import { announcedGroups, announcement } from './domain.js';

/** The part of the node's control socket announcing needs. */
export interface AnnounceChannel {
  sendState(label: string, peers: readonly string[], groups: Iterable<string>): Promise<void>;
  sendLeave(label: string, peers: readonly string[]): Promise<void>;
  unannouncedGroups(label: string): number;
}

export type AnnouncedDomain = Pick<DomainRuntime, 'label' | 'domain' | 'table' | 'local' | 'groups' | 'announced' | 'announcedAt' | 'announcedGroups'>;

export interface DomainAnnouncementsOptions {
  /** The control socket, once it exists. */
  readonly channel: () => AnnounceChannel | undefined;
  /** The outside groups a domain's active gateway receives for it (undefined: not this node's). */
  readonly gatewayGroups: (d: AnnouncedDomain) => string[] | undefined;
  readonly log: Logger;
  /** Groups left out of a domain's STATE (more than one STATE carries). */
  readonly onCapped?: (service: string, dropped: number) => void;
}

export class DomainAnnouncements {
  private readonly announcers = new Map<string, Announcer>();

  constructor(private readonly o: DomainAnnouncementsOptions) {}

  /** STATE of `d` to `to`. Never rejects (the Announcer logs and counts a failure). */
  async announce(d: AnnouncedDomain, to: readonly string[]): Promise<void> {
    await this.of(d)?.announce(to);
  }

  /**
   * STATE (or LEAVE) to every peer node of each domain whose announcement changed. `changesOnly`:
   * only domains already announced (a joins pass).
   */
  async sync(domains: readonly AnnouncedDomain[], changesOnly = false, now = Date.now()): Promise<void> {
    for (const d of domains) {
      if (changesOnly && !d.announced) continue;
      const next = announcement(d, this.o.gatewayGroups(d));
      if (next.announced && !d.announced) d.announcedAt = now;
      d.announced = next.announced;
      d.announcedGroups = next.announcedGroups;
      if (next.send === 'state') await this.announce(d, d.table.targets());
      else if (next.send === 'leave') await this.o.channel()?.sendLeave(d.label, d.table.targets());
    }
  }

  /** LEAVE of every announced domain (SIGTERM). */
  async leaveAll(domains: readonly AnnouncedDomain[]): Promise<void> {
    for (const d of domains) {
      if (d.announced) await this.o.channel()?.sendLeave(d.label, d.table.targets());
      d.announced = false;
    }
  }

  /** Groups of `d` its last STATE left out. */
  unannounced(d: AnnouncedDomain): number {
    return this.announcers.get(d.label)?.unannounced ?? 0;
  }

  private of(d: AnnouncedDomain): Announcer | undefined {
    const channel = this.o.channel();
    if (!channel) return undefined;
    let a = this.announcers.get(d.label);
    if (!a) {
      const service = d.domain.service;
      a = new Announcer({
        channel: {
          sendState: async (peers, state) => await channel.sendState(d.label, peers, state.groups),
          get unannouncedGroups() {
            return channel.unannouncedGroups(d.label);
          },
        },
        local: () => ({ ...NODE_LOCAL_STATE, groups: announcedGroups(d, this.o.gatewayGroups(d)) }),
        targets: () => d.table.targets(),
        log: this.o.log.child({ domain: service }),
        onCapped: (dropped) => this.o.onCapped?.(service, dropped),
      });
      // The node decides itself when a domain is announced (after its members' joins were read).
      a.localKnown();
      this.announcers.set(d.label, a);
    }
    return a;
  }
}
