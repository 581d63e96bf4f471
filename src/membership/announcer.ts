/**
 * Sends this agent's STATE: on a heartbeat, on a local join or leave, and at once to a peer that
 * is new or restarted. Two rules the agent got wrong when it did this inline:
 * - Nothing is sent before the local groups have been read once: a restarted agent that answered
 *   a peer with an empty group set made every peer drop its MDB entries towards this pod until
 *   the next STATE (a gap in delivery right after a restart).
 * - It never rejects: a failed send is logged and counted, never an unhandled rejection.
 * A set of groups beyond the protocol's limit is cut by the channel; this reports it once per change.
 * Both modes use it: the sidecar per pod, the node agent per domain.
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { LocalState } from './codec.js';

/**
 * What the announcer sends through: the sidecar's ControlChannel, or one domain of the node
 * agent's control socket. `sendState` cuts a set beyond the protocol's limit (never throws for
 * it) and `unannouncedGroups` says how many groups the last STATE left out.
 */
export interface StateSender {
  sendState(peers: readonly string[], state: LocalState): Promise<unknown>;
  readonly unannouncedGroups: number;
}

export interface AnnouncerOptions {
  readonly channel: StateSender;
  /** Our MAC, overlay address and joined groups, read at send time. */
  readonly local: () => LocalState;
  /** Where heartbeats go when no target is given. */
  readonly targets: () => readonly string[];
  readonly log: Logger;
  /** Datagrams' destinations sent to (for the sent counter). */
  readonly onSent?: (peers: number) => void;
  /** The number of local groups left out of STATE changed (0 = none any more). */
  readonly onCapped?: (dropped: number) => void;
}

export class Announcer {
  /** Sends that threw (a bug or a closed socket): counted, never thrown. */
  failures = 0;
  private known = false;
  private lastDropped = 0;
  private stopped = false;

  constructor(private readonly options: AnnouncerOptions) {}

  /** The local groups have been read: STATE may be sent from now on. */
  localKnown(): void {
    this.known = true;
  }

  stop(): void {
    this.stopped = true;
  }

  /** Local groups left out of the last STATE. */
  get unannounced(): number {
    return this.lastDropped;
  }

  async announce(targets?: readonly string[]): Promise<void> {
    if (!this.known || this.stopped) return;
    const to = targets ?? this.options.targets();
    if (!to.length) return;
    try {
      const local = this.options.local();
      await this.options.channel.sendState(to, local);
      this.options.onSent?.(to.length);
      const dropped = this.options.channel.unannouncedGroups;
      if (dropped !== this.lastDropped) {
        this.lastDropped = dropped;
        if (dropped > 0) {
          this.options.log.warn(
            { joined: [...local.groups].length, unannounced: dropped },
            'more groups joined than one STATE may carry: the lowest are announced, the rest get no traffic from peers (join fewer groups per pod)',
          );
        } else this.options.log.info('every joined group is announced again');
        this.options.onCapped?.(dropped);
      }
    } catch (err) {
      this.failures += 1;
      this.options.log.error({ err: errorMessage(err) }, 'sending STATE failed');
    }
  }
}
