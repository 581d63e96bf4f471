/**
 * The socket side of the control protocol: one UDP socket on the pod IP and `--control-port`.
 * Every datagram goes through the pure codec and the peer table; whatever it is, it ends as one
 * counter increment, never as an exception out of the socket handler (the port faces the pod
 * network, so garbage is expected input).
 */
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { ConfigError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { decode, Encoder } from './codec.js';
import { checkKeyChange } from './keys.js';
import type { ControlMessage, DecodeFailure, LocalState } from './codec.js';
import type { PeerRejectReason, PeerTable, ReceiveResult } from './peers.js';

/** The outcome of one received datagram; each is a metric label value. */
export type ControlResult = 'ok' | DecodeFailure | PeerRejectReason;
export const CONTROL_RESULTS: readonly ControlResult[] = [
  'ok',
  'malformed',
  'unsupported_version',
  'wrong_cluster',
  'bad_mac',
  'spoofed',
  'unknown_peer',
  'replay',
  'too_many_peers',
];

export type ControlCounters = Record<ControlResult, number>;

export interface ControlEvent {
  readonly msg: ControlMessage;
  readonly from: { readonly address: string; readonly port: number };
  readonly result: ReceiveResult;
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

export interface SendReport {
  readonly datagrams: number;
  readonly failed: number;
}

export class ControlChannel {
  /** Received datagrams by result. Live object: read it, do not write it. */
  readonly counters: Readonly<ControlCounters> = Object.fromEntries(CONTROL_RESULTS.map((r) => [r, 0])) as ControlCounters;
  /** Datagrams sent, and sends that failed (peer unreachable, socket closed). */
  readonly sendCounters = { sent: 0, failed: 0 };
  readonly encoder: Encoder;
  private readonly options: ControlChannelOptions;
  private readonly now: () => number;
  private readonly listeners: Array<(event: ControlEvent) => void> = [];
  private socket: Socket | undefined;
  private keys: readonly Buffer[];
  private unannounced = 0;

  constructor(options: ControlChannelOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.keys = options.keys;
    this.encoder = new Encoder({
      sender: options.podIp ?? options.address,
      cluster: options.cluster,
      key: options.keys[0],
      maxDatagram: options.maxDatagram,
      incarnation: options.incarnation,
    });
  }

  get authenticated(): boolean {
    return this.keys.length > 0;
  }

  /**
   * New keys at run time (the key file changed): the first signs, all verify. A channel started
   * with keys cannot drop to none, and one started without cannot start signing (restart for that).
   */
  setKeys(keys: readonly Buffer[]): void {
    checkKeyChange(this.keys, keys);
    if (keys[0]) this.encoder.setKey(keys[0]);
    this.keys = [...keys];
  }

  /** Local groups left out of the last STATE sent (more than the encoder's maxGroups); 0 normally. */
  get unannouncedGroups(): number {
    return this.unannounced;
  }

  /** Binds the socket. Rejects with a ConfigError naming --control-port when it cannot. */
  async start(): Promise<void> {
    if (this.socket) return;
    this.socket = await bindControlSocket(this.options.address, this.options.port, this.options.logger, (buf, rinfo) => this.handle(buf, rinfo), {
      inUse: 'another process uses that UDP port; choose another --control-port',
      notAvailable: 'the address is not on this host; check the pod IP (KMCAST_POD_IP)',
      other: 'check --control-port',
    });
  }

  /** The bound port (useful with port 0 in tests). */
  get port(): number {
    return this.socket?.address().port ?? this.options.port;
  }

  /** Called for every datagram the peer table accepted. A throwing callback is logged, not fatal. */
  onMessage(cb: (event: ControlEvent) => void): void {
    this.listeners.push(cb);
  }

  /**
   * Sends our full STATE (all its datagrams) to each peer. Never rejects: failures are counted; a
   * set of groups beyond the protocol's limit is cut (see `unannouncedGroups`).
   */
  async sendState(peers: readonly string[], state: LocalState): Promise<SendReport> {
    const { datagrams, dropped } = this.encoder.stateCapped(state, this.now());
    this.unannounced = dropped;
    return await this.sendAll(peers, datagrams);
  }

  /** Sends a LEAVE to each peer (clean shutdown: they drop us at once instead of at expiry). */
  async sendLeave(peers: readonly string[], state?: Omit<LocalState, 'groups'>): Promise<SendReport> {
    return await this.sendAll(peers, [this.encoder.leave(this.now(), state)]);
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private handle(buf: Buffer, rinfo: RemoteInfo): void {
    let result: ControlResult = 'malformed';
    try {
      const decoded = decode(buf, { keys: this.keys, cluster: this.options.cluster });
      if (!decoded.ok) {
        result = decoded.reason;
        return;
      }
      const outcome = this.options.table.receive(decoded.msg, rinfo.address, this.now(), { authenticated: decoded.msg.authenticated });
      result = outcome.accepted ? 'ok' : (outcome.reason ?? 'malformed');
      if (!outcome.accepted) return;
      const event: ControlEvent = { msg: decoded.msg, from: { address: rinfo.address, port: rinfo.port }, result: outcome };
      for (const cb of this.listeners) {
        try {
          cb(event);
        } catch (err) {
          this.options.logger.error({ err: errorMessage(err) }, 'control message handler failed');
        }
      }
    } catch (err) {
      // Not reachable by design (decode never throws); counted as malformed rather than crashing.
      this.options.logger.error({ err: errorMessage(err) }, 'control datagram handling failed');
    } finally {
      (this.counters as ControlCounters)[result] += 1;
    }
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
            if (!socket) {
              failed += 1;
              resolve();
              return;
            }
            const done = (err: Error | null): void => {
              if (err) {
                failed += 1;
                this.options.logger.debug({ peer, err: errorMessage(err) }, 'control send failed');
              }
              resolve();
            };
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
export async function bindControlSocket(
  address: string,
  port: number,
  logger: Logger,
  onMessage: (buf: Buffer, rinfo: RemoteInfo) => void,
  hints: BindHints,
): Promise<Socket> {
  const socket = createSocket({ type: 'udp4' });
  socket.on('message', onMessage);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const fix = code === 'EADDRINUSE' ? hints.inUse : code === 'EADDRNOTAVAIL' ? hints.notAvailable : hints.other;
      reject(new ConfigError(`bind control socket ${address}:${port}: ${errorMessage(err)}; ${fix}`, { cause: err }));
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
