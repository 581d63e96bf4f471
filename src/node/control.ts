/**
 * The node agents' control channel: the sidecar's STATE/LEAVE protocol (src/membership/codec.ts),
 * one UDP socket on the node IP for every domain. Each domain has its own cluster label
 * (`node:<vni>/<service>`), Encoder (sequence numbers) and PeerTable; a datagram goes to the
 * domain whose label it carries, and is refused as `wrong_cluster` when no domain has it.
 * Whatever a datagram is, it ends as one counter increment, never as an exception.
 */
import type { RemoteInfo } from 'node:dgram';
import type { Logger } from '../log.js';
import type { ControlMessage } from '../membership/codec.js';
import { ControlSocket } from '../membership/control.js';
import type { ControlCounters, ControlResult } from '../membership/control.js';
import type { PeerTable, ReceiveResult } from '../membership/peers.js';

export interface DomainChannel {
  readonly label: string;
  readonly table: PeerTable;
}

export interface NodeControlEvent {
  readonly label: string;
  readonly msg: ControlMessage;
  readonly from: string;
  readonly result: ReceiveResult;
}

export interface NodeControlOptions {
  readonly address: string;
  readonly port: number;
  readonly keys: readonly Buffer[];
  readonly domains: readonly DomainChannel[];
  readonly logger: Logger;
  readonly now?: () => number;
}

/** Node mode announces no overlay address or MAC: the peer is the node IP itself. */
export const NODE_LOCAL_STATE = { mac: '00:00:00:00:00:00', overlay: '0.0.0.0' } as const;

/** The node agent's view of the one control socket (membership/control.ts): a label per domain. */
export class NodeControl {
  readonly counters: Readonly<ControlCounters>;
  readonly sendCounters: { sent: number; failed: number };
  private readonly socket: ControlSocket;

  constructor(options: NodeControlOptions) {
    this.socket = new ControlSocket({
      address: options.address,
      port: options.port,
      keys: options.keys,
      channels: options.domains,
      logger: options.logger,
      ...(options.now ? { now: options.now } : {}),
      bindHints: {
        inUse: 'another process (another node agent?) uses that UDP port; choose another --control-port',
        notAvailable: 'the address is not on this node; check --node-ip',
        other: 'check --control-port and --node-ip',
      },
    });
    this.counters = this.socket.counters;
    this.sendCounters = this.socket.sendCounters;
  }

  get authenticated(): boolean {
    return this.socket.authenticated;
  }

  /** New keys at run time (the key file changed): the same rule as the sidecar's (checkKeyChange). */
  setKeys(keys: readonly Buffer[]): void {
    this.socket.setKeys(keys);
  }

  async start(): Promise<void> {
    await this.socket.start();
  }

  get port(): number {
    return this.socket.port;
  }

  onMessage(cb: (e: NodeControlEvent) => void): void {
    this.socket.onMessage((e) => cb({ label: e.label, msg: e.msg, from: e.from.address, result: e.result }));
  }

  /**
   * `local`: what the STATE carries as MAC and overlay address (a gateway's LAN MAC and address).
   * A set of groups beyond the protocol's limit is cut to its lowest groups, exactly as the
   * sidecar's channel does (see `unannouncedGroups`); this never throws for a big set.
   */
  async sendState(label: string, peers: readonly string[], groups: Iterable<string>, local: { mac: string; overlay: string } = NODE_LOCAL_STATE): Promise<void> {
    await this.socket.sendState(label, peers, { ...local, groups });
  }

  /** Groups left out of the last STATE sent for `label` (0 = every group was announced). */
  unannouncedGroups(label: string): number {
    return this.socket.unannouncedGroups(label);
  }

  async sendLeave(label: string, peers: readonly string[], local: { mac: string; overlay: string } = NODE_LOCAL_STATE): Promise<void> {
    await this.socket.sendLeave(label, peers, local);
  }

  async close(): Promise<void> {
    await this.socket.close();
  }

  /** Exported for tests: one datagram, as the socket handler sees it. */
  handle(buf: Buffer, rinfo: Pick<RemoteInfo, 'address'>): ControlResult {
    return this.socket.handle(buf, rinfo);
  }
}
