/**
 * The node agents' control channel: the sidecar's STATE/LEAVE protocol (src/membership/codec.ts),
 * one UDP socket on the node IP for every domain. Each domain has its own cluster label
 * (`node:<vni>/<service>`), Encoder (sequence numbers) and PeerTable; a datagram goes to the
 * domain whose label it carries, and is refused as `wrong_cluster` when no domain has it.
 * Whatever a datagram is, it ends as one counter increment, never as an exception.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { decode, Encoder } from '../membership/codec.js';
import { checkKeyChange } from '../membership/keys.js';
import type { ControlMessage, LocalState } from '../membership/codec.js';
import { bindControlSocket, CONTROL_RESULTS } from '../membership/control.js';
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

export class NodeControl {
  readonly counters: Readonly<ControlCounters> = Object.fromEntries(CONTROL_RESULTS.map((r) => [r, 0])) as ControlCounters;
  readonly sendCounters = { sent: 0, failed: 0 };
  private readonly encoders = new Map<string, Encoder>();
  private readonly tables = new Map<string, PeerTable>();
  private readonly unannounced = new Map<string, number>();
  private readonly now: () => number;
  private readonly listeners: Array<(e: NodeControlEvent) => void> = [];
  private socket: Socket | undefined;
  private keys: readonly Buffer[];

  constructor(private readonly options: NodeControlOptions) {
    this.now = options.now ?? Date.now;
    this.keys = [...options.keys];
    for (const d of options.domains) {
      this.tables.set(d.label, d.table);
      this.encoders.set(d.label, new Encoder({ sender: options.address, cluster: d.label, key: options.keys[0] }));
    }
  }

  get authenticated(): boolean {
    return this.keys.length > 0;
  }

  /** New keys at run time (the key file changed): the same rule as the sidecar's (checkKeyChange). */
  setKeys(keys: readonly Buffer[]): void {
    checkKeyChange(this.keys, keys);
    if (keys[0]) for (const e of this.encoders.values()) e.setKey(keys[0]);
    this.keys = [...keys];
  }

  async start(): Promise<void> {
    this.socket = await bindControlSocket(this.options.address, this.options.port, this.options.logger, (buf, rinfo) => this.handle(buf, rinfo), {
      inUse: 'another process (another node agent?) uses that UDP port; choose another --control-port',
      notAvailable: 'the address is not on this node; check --node-ip',
      other: 'check --control-port and --node-ip',
    });
  }

  get port(): number {
    return this.socket?.address().port ?? this.options.port;
  }

  onMessage(cb: (e: NodeControlEvent) => void): void {
    this.listeners.push(cb);
  }

  /**
   * `local`: what the STATE carries as MAC and overlay address (a gateway's LAN MAC and address).
   * A set of groups beyond the protocol's limit is cut to its lowest groups, exactly as the
   * sidecar's channel does (see `unannouncedGroups`); this never throws for a big set.
   */
  async sendState(label: string, peers: readonly string[], groups: Iterable<string>, local: { mac: string; overlay: string } = NODE_LOCAL_STATE): Promise<void> {
    const enc = this.encoders.get(label);
    if (!enc) return;
    const state: LocalState = { ...local, groups };
    const { datagrams, dropped } = enc.stateCapped(state, this.now());
    this.unannounced.set(label, dropped);
    await this.sendAll(peers, datagrams);
  }

  /** Groups left out of the last STATE sent for `label` (0 = every group was announced). */
  unannouncedGroups(label: string): number {
    return this.unannounced.get(label) ?? 0;
  }

  async sendLeave(label: string, peers: readonly string[], local: { mac: string; overlay: string } = NODE_LOCAL_STATE): Promise<void> {
    const enc = this.encoders.get(label);
    if (enc) await this.sendAll(peers, [enc.leave(this.now(), local)]);
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** Exported for tests: one datagram, as the socket handler sees it. */
  handle(buf: Buffer, rinfo: Pick<RemoteInfo, 'address'>): ControlResult {
    let result: ControlResult = 'wrong_cluster';
    try {
      for (const [label, table] of this.tables) {
        const decoded = decode(buf, { keys: this.keys, cluster: label });
        if (!decoded.ok) {
          if (decoded.reason === 'wrong_cluster') continue;
          result = decoded.reason;
          return result;
        }
        const outcome = table.receive(decoded.msg, rinfo.address, this.now(), { authenticated: decoded.msg.authenticated });
        result = outcome.accepted ? 'ok' : (outcome.reason ?? 'malformed');
        if (!outcome.accepted) return result;
        for (const cb of this.listeners) {
          try {
            cb({ label, msg: decoded.msg, from: rinfo.address, result: outcome });
          } catch (err) {
            this.options.logger.error({ err: errorMessage(err) }, 'control message handler failed');
          }
        }
        return result;
      }
      return result;
    } catch (err) {
      this.options.logger.error({ err: errorMessage(err) }, 'control datagram handling failed');
      result = 'malformed';
      return result;
    } finally {
      (this.counters as ControlCounters)[result] += 1;
    }
  }

  private async sendAll(peers: readonly string[], datagrams: readonly Buffer[]): Promise<void> {
    const socket = this.socket;
    const sends: Array<Promise<void>> = [];
    for (const peer of peers) {
      for (const dg of datagrams) {
        sends.push(
          new Promise<void>((resolve) => {
            const done = (err: Error | null): void => {
              if (err) {
                this.sendCounters.failed += 1;
                this.options.logger.debug({ peer, err: errorMessage(err) }, 'control send failed');
              } else this.sendCounters.sent += 1;
              resolve();
            };
            if (!socket) return done(new Error('socket closed'));
            try {
              socket.send(dg, this.options.port, peer, done);
            } catch (err) {
              done(err instanceof Error ? err : new Error(String(err)));
            }
          }),
        );
      }
    }
    await Promise.all(sends);
  }
}
