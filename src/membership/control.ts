/**
 * The socket side of the control protocol, for both agents: one UDP socket on the pod IP (the
 * sidecar) or the node IP (the node agent) and `--control-port`, carrying one cluster label or
 * many (ControlSocket; the sidecar's ControlChannel and node/control.ts are views of it). Every
 * datagram goes through the pure codec and a peer table; whatever it is, it ends as one counter
 * increment, never as an exception out of the socket handler (the port faces the pod network,
 * so garbage is expected input).
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { RemoteInfo, Socket } from 'node:dgram';
import { ConfigError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { decode, Encoder, SUPPORTED_VERSIONS } from './codec.js';
import { checkKeyChange } from './keys.js';
import type { ControlMessage, DecodeFailure, LocalState } from './codec.js';
import type { PeerRejectReason, PeerTable, ReceiveResult } from './peers.js';

/** The outcome of one received datagram; each is a metric label value. */
export type ControlResult = 'ok' | DecodeFailure | PeerRejectReason;
export const CONTROL_RESULTS: readonly ControlResult[] = ['ok', 'malformed', 'unsupported_version', 'wrong_cluster', 'bad_mac', 'spoofed', 'unknown_peer', 'replay', 'too_many_peers'];

export type ControlCounters = Record<ControlResult, number>;

export interface ControlEvent {
  readonly msg: ControlMessage;
  readonly from: { readonly address: string; readonly port: number };
  readonly result: ReceiveResult;
}

/** One cluster label the socket carries, with the peer table its messages go to. */
export interface LabelChannel {
  readonly label: string;
  readonly table: PeerTable;
}

export interface ControlSocketOptions {
  /** Address to bind (the pod IP, or the node IP) and the control port. */
  readonly address: string;
  readonly port: number;
  /** Port the peers listen on (default: `port`, as every member uses the same --control-port). */
  readonly peerPort?: number;
  /** Address announced as the sender (default: `address`); must be the datagrams' source. */
  readonly sender?: string;
  /** Key file contents: the first signs, all verify; empty = unauthenticated. */
  readonly keys: readonly Buffer[];
  /** The labels carried: a sidecar one (its cluster), a node agent one per domain and gateway. */
  readonly channels: readonly LabelChannel[];
  readonly logger: Logger;
  /** Largest datagram sent (default 1400 bytes). */
  readonly maxDatagram?: number;
  /** Defaults to a fresh random incarnation. */
  readonly incarnation?: string;
  /** Clock in ms (tests pass their own). */
  readonly now?: () => number;
  /** What a bind failure tells the user. */
  readonly bindHints: BindHints;
}

export interface LabelledControlEvent extends ControlEvent {
  readonly label: string;
}

export interface SendReport {
  readonly datagrams: number;
  readonly failed: number;
}

/**
 * The one control channel of both agents: one UDP socket, N cluster labels. Each label has its
 * own Encoder (sequence numbers) and PeerTable; a datagram goes to the label it carries and is
 * `wrong_cluster` when the socket carries no such label. Keys rotate with one rule
 * (checkKeyChange). A STATE beyond the protocol's limit is cut, never thrown.
 */
export class ControlSocket {
  /** Received datagrams by result. Live object: read it, do not write it. */
  readonly counters: Readonly<ControlCounters> = Object.fromEntries(CONTROL_RESULTS.map((r) => [r, 0])) as ControlCounters;
  /** Datagrams sent, and sends that failed (peer unreachable, socket closed). */
  readonly sendCounters = { sent: 0, failed: 0 };
  private readonly encoders = new Map<string, Encoder>();
  private readonly tables = new Map<string, PeerTable>();
  private readonly unannounced = new Map<string, number>();
  private readonly unsupportedSeen = new Set<string>();
  private readonly now: () => number;
  private readonly listeners: Array<(event: LabelledControlEvent) => void> = [];
  private socket: Socket | undefined;
  private keys: readonly Buffer[];

  constructor(private readonly options: ControlSocketOptions) {
    this.now = options.now ?? Date.now;
    this.keys = [...options.keys];
    for (const c of options.channels) {
      this.tables.set(c.label, c.table);
      this.encoders.set(
        c.label,
        new Encoder({ sender: options.sender ?? options.address, cluster: c.label, key: options.keys[0], maxDatagram: options.maxDatagram, incarnation: options.incarnation }),
      );
    }
  }

  get authenticated(): boolean {
    return this.keys.length > 0;
  }

  /** New keys at run time (the key file changed): the first signs, all verify (checkKeyChange). */
  setKeys(keys: readonly Buffer[]): void {
    checkKeyChange(this.keys, keys);
    if (keys[0]) for (const e of this.encoders.values()) e.setKey(keys[0]);
    this.keys = [...keys];
  }

  /** The encoder of `label` (its limits: maxGroups). */
  encoder(label: string): Encoder | undefined {
    return this.encoders.get(label);
  }

  /** Binds the socket. Rejects with a ConfigError naming what to change when it cannot. */
  async start(): Promise<void> {
    if (this.socket) return;
    this.socket = await bindControlSocket(this.options.address, this.options.port, this.options.logger, (buf, rinfo) => void this.handle(buf, rinfo), this.options.bindHints);
  }

  /** The bound port (useful with port 0 in tests). */
  get port(): number {
    return this.socket?.address().port ?? this.options.port;
  }

  /** Called for every datagram a peer table accepted. A throwing callback is logged, not fatal. */
  onMessage(cb: (event: LabelledControlEvent) => void): void {
    this.listeners.push(cb);
  }

  /** Our full STATE (all its datagrams) for `label` to each peer; never rejects, failures counted. */
  async sendState(label: string, peers: readonly string[], state: LocalState): Promise<SendReport> {
    const enc = this.encoders.get(label);
    if (!enc) return { datagrams: 0, failed: 0 };
    const { datagrams, dropped } = enc.stateCapped(state, this.now());
    this.unannounced.set(label, dropped);
    return await this.sendAll(peers, datagrams);
  }

  /** Groups left out of the last STATE sent for `label` (0 = every group was announced). */
  unannouncedGroups(label: string): number {
    return this.unannounced.get(label) ?? 0;
  }

  /** A LEAVE for `label` to each peer (clean shutdown: they drop us at once instead of at expiry). */
  async sendLeave(label: string, peers: readonly string[], state?: Omit<LocalState, 'groups'>): Promise<SendReport> {
    const enc = this.encoders.get(label);
    if (!enc) return { datagrams: 0, failed: 0 };
    return await this.sendAll(peers, [enc.leave(this.now(), state)]);
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** One datagram, as the socket handler sees it (exported for tests). */
  handle(buf: Buffer, rinfo: Pick<RemoteInfo, 'address'> & { port?: number }): ControlResult {
    let result: ControlResult = 'wrong_cluster';
    try {
      for (const [label, table] of this.tables) {
        const decoded = decode(buf, { keys: this.keys, cluster: label });
        if (!decoded.ok) {
          if (decoded.reason === 'wrong_cluster') continue;
          result = decoded.reason;
          if (decoded.reason === 'unsupported_version') this.logUnsupported(rinfo.address, decoded.version);
          return result;
        }
        const outcome = table.receive(decoded.msg, rinfo.address, this.now(), { authenticated: decoded.msg.authenticated });
        result = outcome.accepted ? 'ok' : (outcome.reason ?? 'malformed');
        if (!outcome.accepted) return result;
        const event: LabelledControlEvent = { label, msg: decoded.msg, from: { address: rinfo.address, port: rinfo.port ?? 0 }, result: outcome };
        for (const cb of this.listeners) {
          try {
            cb(event);
          } catch (err) {
            this.options.logger.error({ err: errorMessage(err) }, 'control message handler failed');
          }
        }
        return result;
      }
      return result;
    } catch (err) {
      // Not reachable by design (decode never throws); counted as malformed rather than crashing.
      this.options.logger.error({ err: errorMessage(err) }, 'control datagram handling failed');
      result = 'malformed';
      return result;
    } finally {
      (this.counters as ControlCounters)[result] += 1;
    }
  }

  /**
   * Says once per sender and version (at most 64 remembered) that a peer speaks a protocol this
   * agent cannot read: the datagram is dropped and counted, and the log names the fix.
   */
  private logUnsupported(address: string, version: number | undefined): void {
    const key = `${address}/${version ?? '?'}`;
    if (this.unsupportedSeen.has(key) || this.unsupportedSeen.size >= 64) return;
    this.unsupportedSeen.add(key);
    this.options.logger.warn(
      { peer: address, version, supported: SUPPORTED_VERSIONS },
      `peer speaks control protocol version ${version ?? '?'}, which this agent cannot read (it reads ${SUPPORTED_VERSIONS.join(', ')}): its datagrams are dropped as unsupported_version; upgrade this agent`,
    );
  }

  private async sendAll(peers: readonly string[], datagrams: readonly Buffer[]): Promise<SendReport> {
    const socket = this.socket;
    const port = this.options.peerPort ?? this.options.port;
    let failed = 0;
    const sends: Array<Promise<void>> = [];
    for (const peer of peers) {
      for (const dg of datagrams) {
        sends.push(
          new Promise<void>((resolve) => {
            const done = (err: Error | null): void => {
              if (err) {
                failed += 1;
                this.options.logger.debug({ peer, err: errorMessage(err) }, 'control send failed');
              }
              resolve();
            };
            if (!socket) return done(new Error('socket closed'));
            try {
              socket.send(dg, port, peer, done);
            } catch (err) {
              // send() throws synchronously when the socket was closed meanwhile.
              done(err instanceof Error ? err : new Error(String(err)));
            }
          }),
        );
      }
    }
    await Promise.all(sends);
    const total = peers.length * datagrams.length;
    this.sendCounters.sent += total - failed;
    this.sendCounters.failed += failed;
    return { datagrams: total, failed };
  }
}

export interface ControlChannelOptions {
  /** Address to bind (the pod IP) and the control port. */
  readonly address: string;
  readonly port: number;
  /** Port the peers listen on (default: `port`, as every member uses the same --control-port). */
  readonly peerPort?: number;
  /** Address announced as the sender (default: `address`); must be the datagrams' source. */
  readonly podIp?: string;
  readonly cluster: string;
  /** Key file contents: the first signs, all verify; empty = unauthenticated. */
  readonly keys: readonly Buffer[];
  readonly table: PeerTable;
  readonly logger: Logger;
  /** Largest datagram sent (default 1400 bytes). */
  readonly maxDatagram?: number;
  /** Defaults to a fresh random incarnation. */
  readonly incarnation?: string;
  /** Clock in ms (tests pass their own). */
  readonly now?: () => number;
}

/** The sidecar's view of the one control socket: a single label, its cluster. */
export class ControlChannel {
  readonly counters: Readonly<ControlCounters>;
  readonly sendCounters: { sent: number; failed: number };
  readonly encoder: Encoder;
  private readonly socket: ControlSocket;
  private readonly cluster: string;

  constructor(options: ControlChannelOptions) {
    this.cluster = options.cluster;
    this.socket = new ControlSocket({
      address: options.address,
      port: options.port,
      ...(options.peerPort !== undefined ? { peerPort: options.peerPort } : {}),
      ...(options.podIp !== undefined ? { sender: options.podIp } : {}),
      keys: options.keys,
      channels: [{ label: options.cluster, table: options.table }],
      logger: options.logger,
      ...(options.maxDatagram !== undefined ? { maxDatagram: options.maxDatagram } : {}),
      ...(options.incarnation !== undefined ? { incarnation: options.incarnation } : {}),
      ...(options.now ? { now: options.now } : {}),
      bindHints: {
        inUse: 'another process uses that UDP port; choose another --control-port',
        notAvailable: 'the address is not on this host; check the pod IP (KMCAST_POD_IP)',
        other: 'check --control-port',
      },
    });
    this.counters = this.socket.counters;
    this.sendCounters = this.socket.sendCounters;
    this.encoder = this.socket.encoder(options.cluster)!;
  }

  get authenticated(): boolean {
    return this.socket.authenticated;
  }

  /**
   * New keys at run time (the key file changed): the first signs, all verify. A channel started
   * with keys cannot drop to none, and one started without cannot start signing (restart for that).
   */
  setKeys(keys: readonly Buffer[]): void {
    this.socket.setKeys(keys);
  }

  /** Local groups left out of the last STATE sent (more than the encoder's maxGroups); 0 normally. */
  get unannouncedGroups(): number {
    return this.socket.unannouncedGroups(this.cluster);
  }

  /** Binds the socket. Rejects with a ConfigError naming --control-port when it cannot. */
  async start(): Promise<void> {
    await this.socket.start();
  }

  /** The bound port (useful with port 0 in tests). */
  get port(): number {
    return this.socket.port;
  }

  /** Called for every datagram the peer table accepted. A throwing callback is logged, not fatal. */
  onMessage(cb: (event: ControlEvent) => void): void {
    this.socket.onMessage(cb);
  }

  /**
   * Sends our full STATE (all its datagrams) to each peer. Never rejects: failures are counted; a
   * set of groups beyond the protocol's limit is cut (see `unannouncedGroups`).
   */
  async sendState(peers: readonly string[], state: LocalState): Promise<SendReport> {
    return await this.socket.sendState(this.cluster, peers, state);
  }

  /** Sends a LEAVE to each peer (clean shutdown: they drop us at once instead of at expiry). */
  async sendLeave(peers: readonly string[], state?: Omit<LocalState, 'groups'>): Promise<SendReport> {
    return await this.socket.sendLeave(this.cluster, peers, state);
  }

  async close(): Promise<void> {
    await this.socket.close();
  }
}

/** What to tell the user when the control socket cannot bind, by cause. */
export interface BindHints {
  readonly inUse: string;
  readonly notAvailable: string;
  readonly other: string;
}

/**
 * Binds the UDP control socket exclusively (both agents). Rejects with a ConfigError that says
 * what to change; after binding, socket errors (e.g. ICMP-driven ones) are logged, never fatal.
 */
export async function bindControlSocket(address: string, port: number, logger: Logger, onMessage: (buf: Buffer, rinfo: RemoteInfo) => void, hints: BindHints): Promise<Socket> {
  // The address's family: a node agent on an IPv6 underlay binds its IPv6 node address (udp6,
  // bound to that one address, so no IPv4-mapped peer ever reaches it).
  const socket = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4' });
  socket.on('message', onMessage);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const fix = code === 'EADDRINUSE' ? hints.inUse : code === 'EADDRNOTAVAIL' ? hints.notAvailable : hints.other;
      reject(new ConfigError(`bind control socket ${isIPv6(address) ? `[${address}]` : address}:${port}: ${errorMessage(err)}; ${fix}`, { cause: err }));
    };
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  socket.on('error', (err) => logger.warn({ err: errorMessage(err) }, 'control socket error'));
  return socket;
}
