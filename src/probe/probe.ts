/**
 * The socket side of `kmcast probe`: one UDP socket that binds the group port, joins the group,
 * sends paced, sequenced datagrams to it and records every datagram it receives. Everything it
 * computes lives in the pure modules (codec, pacer, stats, report); this file only moves bytes.
 */
import { createSocket } from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { resolve4, resolve6 } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { performance } from 'node:perf_hooks';
import { randomInt } from 'node:crypto';
import { ConfigError, errorMessage, KmcastError } from '../errors.js';
import { canonicalIpv6, isIpv6LinkLocalMulticast } from '../net/ipv6.js';
import type { Logger } from '../log.js';
import { decode, FLAG_HELLO, FLAG_LISTENER, FLAG_READY, makeTemplate, stamp } from './codec.js';
import type { ProbeConfig } from './options.js';
import { Pacer } from './pacer.js';
import { buildReport } from './report.js';
import type { ProbeReport, SendSummary } from './report.js';
import { MAX_STREAMS, missingSender, StreamStats, StreamTable } from './stats.js';
import type { SenderSummary } from './stats.js';

/** Epoch milliseconds with sub-millisecond precision (Date.now() has 1 ms steps). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Receive buffer we ask for: bursts at 10k+ pps overflow the 208 KiB default quickly. */
const RECV_BUFFER_BYTES = 4 << 20;
/** HELLO period while a peer list is given (a few datagrams a second: no load worth measuring). */
const HELLO_INTERVAL_MS = 200;
/** The longest a sender waits for every expected peer's HELLO before sending anyway. */
export const START_TIMEOUT_MS = 10_000;

export interface ProbeDeps {
  readonly logger: Logger;
  /** Ends the run early (SIGINT); the report covers what happened so far. */
  readonly signal?: AbortSignal;
  /** DNS lookup for --service (A records, AAAA for an IPv6 group); injectable for tests. */
  readonly resolve4?: (name: string) => Promise<string[]>;
  readonly resolve6?: (name: string) => Promise<string[]>;
  /** Our own addresses, removed from the expected peers (a probe does not count itself). */
  readonly localAddresses?: () => ReadonlySet<string>;
}

/** Our own addresses of both families (IPv6 canonical, without a zone). */
export function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) out.add(a.family === 'IPv4' ? a.address : (canonicalIpv6(a.address.split('%')[0]!) ?? a.address));
  }
  return out;
}

/** A datagram's source as peers are written: IPv6 canonical, without the zone Node appends to a link-local one. */
export function sourceOf(address: string): string {
  return address.includes(':') ? (canonicalIpv6(address.split('%')[0]!) ?? address) : address;
}

/** The senders we expect: --peers plus the --service's A records, minus ourselves. */
export async function expectedPeers(config: ProbeConfig, deps: ProbeDeps): Promise<string[]> {
  const peers = new Set(config.peers);
  if (config.service !== undefined) {
    try {
      const lookup = config.family === 6 ? (deps.resolve6 ?? resolve6) : (deps.resolve4 ?? resolve4);
      for (const ip of await lookup(config.service)) peers.add(config.family === 6 ? (canonicalIpv6(ip) ?? ip) : ip);
    } catch (err) {
      throw new ConfigError(`resolve --service ${config.service}: ${errorMessage(err)}; check the name or give --peers`, { cause: err });
    }
  }
  const self = (deps.localAddresses ?? localAddresses)();
  return [...peers].filter((p) => !self.has(p)).sort();
}

function bind(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.bind({ port, address, exclusive: false }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

export async function runProbe(config: ProbeConfig, deps: ProbeDeps): Promise<ProbeReport> {
  const { logger } = deps;
  const peers = await expectedPeers(config, deps);
  const session = randomInt(1, 0xffff_ffff);
  const receiving = config.mode !== 'send';
  const sending = config.mode !== 'receive';
  const socket = createSocket({ type: config.family === 6 ? 'udp6' : 'udp4', reuseAddr: true, ...(config.family === 6 ? { ipv6Only: true } : {}) });
  const streams = new StreamTable();
  let warnedFull = false;
  let foreign = 0;
  let joinedAt = epochMs();

  // Binding the group address (not 0.0.0.0) keeps other groups on the same port out of this
  // socket: Linux delivers every joined group to wildcard-bound sockets (IP_MULTICAST_ALL).
  // Broadcast cannot be bound that way, so the broadcast mode binds the wildcard. A send-only
  // probe with a peer list also binds and joins: it must hear the receivers' HELLOs.
  const listening = receiving || peers.length > 0;
  const wildcard = config.family === 6 ? '::' : '0.0.0.0';
  // A link-local IPv6 group can only be bound with its interface (a zone); without --interface the wildcard.
  const group6 = config.family === 6 && isIpv6LinkLocalMulticast(config.group) ? (config.interfaceName ? `${config.group}%${config.interfaceName}` : wildcard) : config.group;
  const bindAddress = !listening ? wildcard : config.broadcast ? wildcard : group6;
  try {
    await bind(socket, listening ? config.port : 0, bindAddress);
  } catch (err) {
    socket.close();
    throw new KmcastError(`bind probe socket to ${bindAddress}:${config.port}: ${errorMessage(err)}`, { cause: err });
  }
  socket.on('error', (err) => logger.warn({ err: errorMessage(err) }, 'probe socket error'));
  try {
    socket.setRecvBufferSize(RECV_BUFFER_BYTES);
  } catch {
    // Capped by net.core.rmem_max or refused: the default buffer still works at modest rates.
  }
  try {
    if (config.broadcast) socket.setBroadcast(true);
    else {
      socket.setMulticastTTL(config.ttl);
      if (config.interfaceAddress !== undefined) socket.setMulticastInterface(config.interfaceAddress);
      if (listening) socket.addMembership(config.group, config.interfaceAddress);
    }
    socket.setTTL(config.ttl);
  } catch (err) {
    socket.close();
    const where = config.interfaceAddress === undefined ? `the route to ${config.family === 6 ? 'ff00::/8' : '224.0.0.0/4'}` : `interface ${config.interfaceName ?? config.interfaceAddress}`;
    throw new KmcastError(`join ${config.group} on ${where}: ${errorMessage(err)}; check --interface or that a multicast route exists`, {
      cause: err,
    });
  }
  joinedAt = epochMs();

  let ownReceived = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let aborted = false;

  // Who we heard from (any probe datagram), who told us it heard every peer it expects (READY:
  // so it heard us), and who told us it only listens.
  const heard = new Set<string>();
  const confirmed = new Set<string>();
  const listeners = new Set<string>();
  let onHeard: () => void = () => undefined;
  const heardAll = (): boolean => peers.every((p) => heard.has(p));

  const allExpectedComplete = (): boolean => {
    if (peers.length === 0) return false; // without a peer list we cannot know who is still coming
    for (const s of streams.values()) if (!s.complete()) return false;
    const complete = new Set([...streams.values()].filter((s) => s.complete()).map((s) => s.address));
    return peers.every((p) => complete.has(p) || listeners.has(p));
  };

  let sendDone = !sending;
  const peerSet = new Set(peers);
  // Datagrams of streams beyond MAX_STREAMS are counted as foreign, with one warning.
  const full = (): void => {
    foreign++;
    if (warnedFull) return;
    warnedFull = true;
    logger.warn({ maxStreams: MAX_STREAMS }, 'probe: too many sender streams; datagrams of further streams are counted as foreign');
  };
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    const rinfo = { address: sourceOf(from.address), port: from.port };
    const now = epochMs();
    const d = decode(msg);
    if (d.kind === 'probe') {
      if (d.session === session) {
        ownReceived++; // multicast loopback: our own datagrams are not a sender to report
        return;
      }
      // Only expected peers are remembered: forged sources cannot grow these sets.
      if (peerSet.has(rinfo.address) && (!heard.has(rinfo.address) || (d.ready && !confirmed.has(rinfo.address)))) {
        const first = !heardAll();
        heard.add(rinfo.address);
        if (d.ready) confirmed.add(rinfo.address);
        // Tell the others at once that we hear them all: they wait for that to start.
        if (first && heardAll()) sayHello();
        onHeard();
      }
      if (d.listener) {
        if (peerSet.has(rinfo.address)) listeners.add(rinfo.address);
        return;
      }
      if (!receiving) return; // send-only: HELLOs matter, the others' data is not ours to report
      const s = streams.get(`p:${d.session}`, () => new StreamStats(d.id, rinfo.address, 'probe', joinedAt));
      if (!s) {
        full();
        return;
      }
      if (d.hello) s.hello(now, d.total);
      else s.record(d.seq, d.sentAt, now, d.total);
    } else if (d.kind === 'iperf2') {
      const s = streams.get(`i:${rinfo.address}:${rinfo.port}`, () => new StreamStats(`${rinfo.address}:${rinfo.port}`, rinfo.address, 'iperf2', joinedAt));
      if (!s) {
        full();
        return;
      }
      // iperf2 numbers data datagrams from 1 and ends with a FIN datagram whose id is
      // -(last data id + 1); our statistics count sequences from 0.
      if (d.seq < 0) s.finish(-d.seq - 1);
      else if (d.seq > 0) s.record(d.seq - 1, d.sentAt, now);
    } else {
      foreign++;
      return;
    }
    if (sendDone && allExpectedComplete()) finish();
  });

  // Handshake (omping's idea, over the group itself): with a peer list, every probe announces
  // itself with HELLO datagrams, flagged READY once it has heard every peer it expects. A sender
  // starts its data only once every expected peer said READY: each of them hears us, so the path
  // from us to it works. Hearing a peer proves only the other direction: with node mode's
  // --unregistered drop, our datagrams reach another node only once that node announced its
  // member's join, which can come later than its own datagrams reach us. So probes started a few
  // seconds apart, or joined before the paths were programmed, do not report the datagrams sent
  // before as lost. A peer that never confirms delays the start by START_TIMEOUT_MS at most; one
  // never heard is then reported as missing. (Each probe is expected to list the others.)
  const template = makeTemplate(config.id, config.size);
  const readyFlag = (): number => (peers.length > 0 && heardAll() ? FLAG_READY : 0);
  let helloSeq = 0;
  let sendingData = false;
  function sayHello(): void {
    if (sendingData || aborted || peers.length === 0) return;
    const buf = Buffer.allocUnsafe(template.length);
    template.copy(buf);
    const flags = FLAG_HELLO | (sending ? 0 : FLAG_LISTENER) | readyFlag();
    stamp(buf, { session, seq: helloSeq++, total: sending ? config.count : 0, sentAt: epochMs(), flags });
    socket.send(buf, config.port, config.group, () => undefined);
  }
  let helloTimer: NodeJS.Timeout | undefined;
  if (peers.length > 0) {
    sayHello();
    helloTimer = setInterval(sayHello, HELLO_INTERVAL_MS);
  }
  const barrier = new Promise<void>((resolve) => {
    if (!sending || peers.every((p) => confirmed.has(p))) {
      resolve();
      return;
    }
    const t = setTimeout(() => {
      logger.warn(
        { missing: peers.filter((p) => !heard.has(p)), unconfirmed: peers.filter((p) => heard.has(p) && !confirmed.has(p)) },
        'probe: not every peer confirmed it hears us (missing: never heard; unconfirmed: heard, but it did not hear every peer it expects); sending anyway',
      );
      resolve();
    }, START_TIMEOUT_MS);
    onHeard = () => {
      if (peers.every((p) => confirmed.has(p))) {
        clearTimeout(t);
        onHeard = () => undefined;
        resolve();
      }
    };
    void finished.then(() => {
      clearTimeout(t);
      resolve();
    });
  });

  // Sending: datagram k is due at start + k/rate (see Pacer); each tick sends what is due.
  let sendSummary: SendSummary | null = null;
  let sendStart = epochMs();
  let pacer = new Pacer({ rate: config.rate, count: config.count, start: sendStart });
  let sendEnd = sendStart;
  let sendErrors = 0;
  let pending = 0;
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;

  const sendData = (): Promise<void> =>
    new Promise<void>((resolve) => {
      sendingData = true;
      sendStart = epochMs();
      pacer = new Pacer({ rate: config.rate, count: config.count, start: sendStart });
      const onSent = (err: Error | null): void => {
        pending--;
        if (err) sendErrors++;
        if ((pacer.done || aborted) && pending === 0) {
          sendEnd = epochMs();
          resolve();
        }
      };
      const tick = (): void => {
        timer = undefined;
        immediate = undefined;
        if (aborted) return;
        const n = pacer.due(epochMs());
        for (let i = 0; i < n; i++) {
          // A fresh buffer per datagram: dgram may hand it to the kernel after this loop has
          // already stamped the next one, so one shared buffer would corrupt queued datagrams.
          const buf = Buffer.allocUnsafe(template.length);
          template.copy(buf);
          // READY on data too: a peer that missed our READY HELLOs (we stop them while sending) learns it here.
          stamp(buf, { session, seq: pacer.sent + i, total: config.count, sentAt: epochMs(), flags: readyFlag() });
          pending++;
          socket.send(buf, config.port, config.group, onSent);
        }
        pacer.advance(n);
        if (pacer.done) return;
        const delay = pacer.nextAt() - epochMs();
        // Under ~1 ms a timer would oversleep; setImmediate also lets send callbacks and
        // received datagrams run between batches.
        if (delay < 1) immediate = setImmediate(tick);
        else timer = setTimeout(tick, Math.floor(delay));
      };
      tick();
    });

  const stop = (): void => {
    aborted = true;
    if (timer) clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
    finish();
  };
  deps.signal?.addEventListener('abort', stop, { once: true });
  if (deps.signal?.aborted) stop();

  let waitTimer: NodeJS.Timeout | undefined;
  try {
    if (sending) {
      await barrier;
      if (!aborted) await Promise.race([sendData(), finished]);
      sendingData = false;
      const durationMs = Math.max(0, sendEnd - sendStart);
      sendSummary = {
        planned: config.count,
        sent: pacer.sent - sendErrors,
        errors: sendErrors,
        durationMs,
        pps: durationMs > 0 && pacer.sent > 1 ? ((pacer.sent - sendErrors - 1) * 1000) / durationMs : null,
      };
      logger.debug({ ...sendSummary, ownReceived }, 'probe sending done');
    }
    sendDone = true;
    if (receiving && !aborted) {
      // Receive-only: listen for as long as a sender with the same options would send, plus --wait.
      const listenMs = (sending ? 0 : pacer.plannedDurationMs()) + config.waitMs;
      if (allExpectedComplete()) finish();
      waitTimer = setTimeout(finish, listenMs);
      await finished;
    }
  } finally {
    if (waitTimer) clearTimeout(waitTimer);
    if (helloTimer) clearInterval(helloTimer);
    deps.signal?.removeEventListener('abort', stop);
    if (timer) clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
    socket.close();
  }

  const senders: SenderSummary[] = [...streams.values()].map((s) => s.summary());
  if (receiving) {
    const seen = new Set(senders.map((s) => s.address));
    for (const p of peers) if (!seen.has(p) && !listeners.has(p)) senders.push(missingSender(p, config.count));
  }
  return buildReport({
    id: config.id,
    group: config.group,
    port: config.port,
    mode: config.mode,
    size: config.size,
    rate: config.rate,
    send: sendSummary,
    senders,
    foreign,
    maxLossPercent: config.maxLossPercent,
  });
}
