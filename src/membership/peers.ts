/**
 * The peer table: who the members are, which of them are alive, and which groups each joined.
 * Pure: inputs are decoded control messages, the listed (DNS/static) addresses and `now` in ms;
 * the caller turns the output into FDB/MDB entries and the allow-list.
 *
 * Why these rules (DESIGN section 4):
 * - A message is believed only from the address it claims (`spoofed` otherwise). Without a key
 *   the source address is all there is, so only listed addresses are believed; with a key, a
 *   valid MAC is enough, and a new pod is admitted from its first STATE (fast join) instead of
 *   waiting for CoreDNS to stop serving a cached answer (30-60 s).
 * - Only silence expires a peer, never DNS: a peer dropped from a cached DNS answer but still
 *   talking stays alive; a listed peer that never spoke stays `pending` and gets no traffic.
 * - A multi-datagram STATE is applied only when complete, so a lost part never shrinks a peer's
 *   groups to a fraction; the last complete set stays until a newer one is whole.
 * - A starved peer is not a dead one (docs/protocol.md, "Timing"): a listed peer silent past the
 *   expiry only becomes suspect and keeps its entries until `listedExpiryMs`; time this agent
 *   itself was not running (a stalled event loop, seen as late `expire` ticks) is not counted as
 *   anyone's silence. A LEAVE still applies at once; a crashed peer still goes.
 * - Every per-sender structure is bounded: peers admitted by key alone (`maxControlPeers`), the
 *   groups (and so MDB entries) per peer (`maxGroupsPerPeer`), the replay state and incarnations
 *   (forgotten with the peer).
 */
import type { PeerState, PeerStatus, PeerSource } from './peer-status.js';
import type { ControlMessage } from './codec.js';
import { compareGroups } from '../net/groups.js';
import { compareIpv4, isUnicast, parseIpv4 } from '../net/ipv4.js';
import { canonicalIpv6, isIpv6Unicast } from '../net/ipv6.js';
import { ReplayGuard } from './replay.js';

export type ListSource = 'dns' | 'static';
export type PeerRejectReason = 'unknown_peer' | 'replay' | 'spoofed' | 'too_many_peers';

/** Default bound on peers admitted by their authenticated STATE alone (not listed by DNS or --peers). */
export const DEFAULT_MAX_CONTROL_PEERS = 1024;
/**
 * Default bound on the groups kept per peer, and so on the MDB entries towards it: what a sender
 * announces at most (codec.ts MAX_ANNOUNCED_GROUPS), so an honest peer is never truncated.
 */
export const DEFAULT_MAX_GROUPS_PER_PEER = 20_000;

export interface ReceiveResult {
  readonly accepted: boolean;
  readonly reason?: PeerRejectReason;
  /** The peer's groups, MAC, overlay address or aliveness changed: reconcile FDB/MDB. */
  readonly changed: boolean;
  /** The peer was not alive before: reply with our STATE at once so it learns us as fast. */
  readonly isNew: boolean;
  /** Present (true) when the peer was known under another incarnation: it restarted and lost our STATE. */
  readonly restarted?: true;
}

export interface AlivePeer {
  readonly ip: string;
  readonly mac: string;
  readonly overlayAddr: string;
  /** Numeric order. */
  readonly groups: readonly string[];
  /** ms, the caller's clock. */
  readonly lastSeen: number;
  readonly incarnation: string;
}

export interface PeerTableOptions {
  /** This pod's own IP: never a peer, whatever DNS says. */
  readonly selfIp: string;
  /** A peer silent for longer than this is expired (the agent uses 5 x heartbeat). */
  readonly expiryMs: number;
  /** Timestamp window of the replay guard (default 30 s). */
  readonly replayWindowMs?: number;
  /** Sequence-number window of the replay guard (default 64). */
  readonly seqWindow?: number;
  /**
   * How long an unlisted peer that left or expired is remembered (status, replay state).
   * Default and minimum: 2 x replay window + expiry, so a replay of its last datagrams is
   * already outside the timestamp window when its replay state is dropped.
   */
  readonly forgetAfterMs?: number;
  /**
   * A peer that DNS or --peers still lists is removed only after this much silence (default:
   * expiryMs); between expiryMs and this it is `suspect` and keeps its entries.
   */
  readonly listedExpiryMs?: number;
  /**
   * How often the caller calls `expire` (ms). When given, a gap between two calls longer than
   * twice this is taken as a stall of this process, and the stalled time is not counted as
   * silence of any peer; the call that ends a stall expires nobody (queued datagrams are read first).
   */
  readonly tickMs?: number;
  /** Bound on peers admitted by key alone (default 1024); more are refused as `too_many_peers`. */
  readonly maxControlPeers?: number;
  /** Groups kept per peer (default 20,000); the rest of a bigger STATE is dropped and counted. */
  readonly maxGroupsPerPeer?: number;
  /** How far ahead of our clock a timestamp may be (replay guard, default 5 s). */
  readonly maxAheadMs?: number;
}

/** Counters and gauges of the bounds, for metrics. */
export interface PeerTableLimits {
  /** Datagrams refused because maxControlPeers unlisted peers are already known (counter). */
  readonly controlPeersRefused: number;
  /** Groups currently dropped from peers' STATEs by maxGroupsPerPeer (gauge, all peers). */
  readonly groupsTruncated: number;
  readonly maxControlPeers: number;
  readonly maxGroupsPerPeer: number;
}

interface Assembly {
  readonly base: number;
  readonly parts: number;
  readonly got: Map<number, readonly string[]>;
  /** Groups stored in `got` (bounded by maxGroupsPerPeer) and announced in all parts so far. */
  stored: number;
  announced: number;
}

interface PeerRecord {
  readonly ip: string;
  readonly listed: Set<ListSource>;
  /** Admitted by an authenticated message while no list had it. */
  control: boolean;
  state: PeerState;
  lastSeen: number | null;
  /** lastSeen moved forward by the time this process was stalled since: what silence is measured from. */
  quietSince: number;
  /** Silent past the expiry but still listed: kept, replicated to, reported. */
  suspect: boolean;
  /** Groups of its last STATE beyond maxGroupsPerPeer. */
  truncated: number;
  /** When it last stopped being alive (left or expired); drives forgetting. */
  inactiveSince: number | null;
  incarnation: string | null;
  mac: string;
  overlay: string;
  groups: readonly string[];
  /** STATE parts whose first sequence number is <= this are stale (older than applied or LEAVE). */
  floorSeq: number;
  assembly: Assembly | null;
}

const REJECT = (reason: PeerRejectReason): ReceiveResult => ({ accepted: false, reason, changed: false, isNew: false });
const UNCHANGED: ReceiveResult = { accepted: true, changed: false, isNew: false };

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class PeerTable {
  readonly selfIp: string;
  readonly expiryMs: number;
  readonly forgetAfterMs: number;
  readonly listedExpiryMs: number;
  readonly maxControlPeers: number;
  readonly maxGroupsPerPeer: number;
  private readonly tickMs: number | undefined;
  private readonly replay: ReplayGuard;
  private readonly peers = new Map<string, PeerRecord>();
  private lastTick: number | undefined;
  private controlPeersRefused = 0;

  constructor(options: PeerTableOptions) {
    if (!(options.expiryMs > 0)) throw new RangeError(`peer expiry must be > 0 ms, got ${options.expiryMs}`);
    this.selfIp = options.selfIp;
    this.expiryMs = options.expiryMs;
    this.listedExpiryMs = Math.max(options.listedExpiryMs ?? this.expiryMs, this.expiryMs);
    this.maxControlPeers = options.maxControlPeers ?? DEFAULT_MAX_CONTROL_PEERS;
    this.maxGroupsPerPeer = options.maxGroupsPerPeer ?? DEFAULT_MAX_GROUPS_PER_PEER;
    if (!(this.maxControlPeers >= 0) || !(this.maxGroupsPerPeer >= 0)) throw new RangeError('peer table bounds must be >= 0');
    this.tickMs = options.tickMs;
    this.replay = new ReplayGuard({ windowMs: options.replayWindowMs, seqWindow: options.seqWindow, maxAheadMs: options.maxAheadMs });
    const minForget = 2 * this.replay.windowMs + this.listedExpiryMs;
    this.forgetAfterMs = Math.max(options.forgetAfterMs ?? minForget, minForget);
  }

  /**
   * Replaces the addresses `source` lists (call it after each successful resolution; on a DNS
   * failure do not call it, so the last known set stays). The pod's own IP is left out.
   */
  setListed(source: ListSource, ips: Iterable<string>): void {
    const next = new Set<string>();
    for (const ip of ips) {
      // IPv4, or IPv6 (node mode on an IPv6 underlay), in the codec's canonical text.
      const value = parseIpv4(ip);
      const ok = value !== undefined ? isUnicast(value) : isIpv6Unicast(ip) && canonicalIpv6(ip) === ip;
      if (!ok) throw new TypeError(`list ${source} peers: ${JSON.stringify(ip)} is not a unicast IPv4 or canonical IPv6 address`);
      if (ip !== this.selfIp) next.add(ip);
    }
    for (const rec of this.peers.values()) {
      if (!rec.listed.has(source) || next.has(rec.ip)) continue;
      rec.listed.delete(source);
      // Never heard from and no longer listed: nothing to remember. A peer that talked stays
      // until silence expires it: DNS answers are cached and lag behind reality.
      if (rec.listed.size === 0 && rec.lastSeen === null) {
        this.peers.delete(rec.ip);
        this.replay.forget(rec.ip);
      }
    }
    for (const ip of next) this.record(ip).listed.add(source);
  }

  /** Applies one decoded control message received from `srcIp`. */
  receive(msg: ControlMessage, srcIp: string, now: number, opts: { readonly authenticated: boolean }): ReceiveResult {
    if (msg.sender !== srcIp) return REJECT('spoofed');
    if (msg.sender === this.selfIp) return REJECT('unknown_peer');
    const existing = this.peers.get(msg.sender);
    // Without a key a listed address is believed, and so is one that was believed before and
    // has kept talking since (it only dropped out of a cached DNS answer).
    const believed = opts.authenticated || (existing !== undefined && (existing.listed.size > 0 || existing.state === 'alive'));
    if (!believed) return REJECT('unknown_peer');
    if (existing === undefined && this.unlistedCount() >= this.maxControlPeers) {
      this.controlPeersRefused += 1;
      return REJECT('too_many_peers');
    }
    if (this.replay.admit(msg.sender, msg.incarnation, msg.seq, msg.timestamp, now) === 'replay') return REJECT('replay');

    const rec = existing ?? this.record(msg.sender);
    if (opts.authenticated && rec.listed.size === 0) rec.control = true;
    let restarted = false;
    if (rec.incarnation !== msg.incarnation) {
      // The replay guard only lets a newer incarnation through: the peer restarted.
      restarted = rec.incarnation !== null;
      rec.incarnation = msg.incarnation;
      rec.floorSeq = -1;
      rec.assembly = null;
    }
    const result = msg.type === 'leave' ? this.applyLeave(rec, msg, now) : this.applyStatePart(rec, msg, now);
    return restarted ? { ...result, restarted: true } : result;
  }

  private unlistedCount(): number {
    let n = 0;
    for (const rec of this.peers.values()) if (rec.listed.size === 0) n += 1;
    return n;
  }

  private applyLeave(rec: PeerRecord, msg: ControlMessage, now: number): ReceiveResult {
    rec.floorSeq = Math.max(rec.floorSeq, msg.seq);
    const wasAlive = rec.state === 'alive';
    rec.state = 'left';
    rec.groups = [];
    rec.assembly = null;
    rec.lastSeen = now;
    rec.quietSince = now;
    rec.suspect = false;
    rec.truncated = 0;
    rec.inactiveSince = now;
    return { accepted: true, changed: wasAlive, isNew: false };
  }

  private applyStatePart(rec: PeerRecord, msg: ControlMessage, now: number): ReceiveResult {
    const base = msg.seq - msg.part;
    if (base <= rec.floorSeq) return UNCHANGED; // a part of a STATE older than one applied, or than a LEAVE
    let changed = false;
    const isNew = rec.state !== 'alive';
    if (isNew) {
      rec.state = 'alive';
      rec.inactiveSince = null;
      changed = true;
    }
    rec.lastSeen = now;
    rec.quietSince = now;
    rec.suspect = false;
    if (rec.mac !== msg.mac || rec.overlay !== msg.overlay) {
      rec.mac = msg.mac;
      rec.overlay = msg.overlay;
      changed = true;
    }

    let asm = rec.assembly;
    if (asm !== null && (asm.base !== base || asm.parts !== msg.parts)) {
      if (base < asm.base) return { accepted: true, changed, isNew }; // an older STATE, overtaken
      asm = null;
    }
    asm ??= { base, parts: msg.parts, got: new Map(), stored: 0, announced: 0 };
    if (!asm.got.has(msg.part)) {
      // Bounded while assembling too: a forged STATE of 64 jumbo datagrams buffers no more.
      const keep = msg.groups.slice(0, Math.max(0, this.maxGroupsPerPeer - asm.stored));
      asm.got.set(msg.part, keep);
      asm.stored += keep.length;
      asm.announced += msg.groups.length;
    }
    if (asm.got.size < asm.parts) {
      rec.assembly = asm;
      return { accepted: true, changed, isNew };
    }

    const groups = new Set<string>();
    for (const part of asm.got.values()) for (const g of part) groups.add(g);
    const sorted = [...groups].sort(compareGroups).slice(0, this.maxGroupsPerPeer);
    rec.truncated = asm.announced - sorted.length;
    if (!sameList(sorted, rec.groups)) {
      rec.groups = sorted;
      changed = true;
    }
    rec.floorSeq = base;
    rec.assembly = null;
    return { accepted: true, changed, isNew };
  }

  /**
   * Expires peers silent for longer than `expiryMs` (listed ones: `listedExpiryMs`; in between
   * they are suspect) and returns their IPs (remove their FDB, MDB and neighbour entries). Also
   * forgets unlisted peers inactive for `forgetAfterMs`.
   */
  expire(now: number): string[] {
    const expired: string[] = [];
    const last = this.lastTick;
    this.lastTick = now;
    if (this.tickMs !== undefined && last !== undefined && now - last > 2 * this.tickMs) {
      // This process did not run for a while: do not count that as anybody's silence, and let
      // the datagrams queued meanwhile be read before judging (timers run before I/O).
      const stalled = now - last - this.tickMs;
      for (const rec of this.peers.values()) if (rec.state === 'alive') rec.quietSince = Math.min(now, rec.quietSince + stalled);
      return expired;
    }
    for (const rec of this.peers.values()) {
      const silence = now - rec.quietSince;
      if (rec.state === 'alive' && rec.lastSeen !== null && silence > this.expiryMs) {
        if (rec.listed.size > 0 && silence <= this.listedExpiryMs) {
          rec.suspect = true;
          continue;
        }
        rec.state = 'expired';
        rec.suspect = false;
        rec.groups = [];
        rec.truncated = 0;
        rec.assembly = null;
        rec.inactiveSince = now;
        expired.push(rec.ip);
      } else if (rec.listed.size === 0 && rec.state !== 'alive' && rec.inactiveSince !== null && now - rec.inactiveSince > this.forgetAfterMs) {
        this.peers.delete(rec.ip);
        this.replay.forget(rec.ip);
      }
    }
    return expired.sort(compareIpv4);
  }

  /** Alive peers silent past the expiry but kept because they are still listed. */
  suspects(): string[] {
    return this.sorted()
      .filter((rec) => rec.state === 'alive' && rec.suspect)
      .map((rec) => rec.ip);
  }

  limits(): PeerTableLimits {
    let truncated = 0;
    for (const rec of this.peers.values()) truncated += rec.truncated;
    return { controlPeersRefused: this.controlPeersRefused, groupsTruncated: truncated, maxControlPeers: this.maxControlPeers, maxGroupsPerPeer: this.maxGroupsPerPeer };
  }

  /** Senders the replay guard holds state for (never more than the peers known). */
  get replaySize(): number {
    return this.replay.size;
  }

  /** Peers to replicate to: heard within the expiry and not left. */
  alive(): AlivePeer[] {
    const out: AlivePeer[] = [];
    for (const rec of this.sorted()) {
      if (rec.state !== 'alive' || rec.lastSeen === null || rec.incarnation === null) continue;
      out.push({ ip: rec.ip, mac: rec.mac, overlayAddr: rec.overlay, groups: rec.groups, lastSeen: rec.lastSeen, incarnation: rec.incarnation });
    }
    return out;
  }

  /** Where our STATE and heartbeats go: every listed peer (so it can learn us) and every alive one. */
  targets(): string[] {
    return this.sorted()
      .filter((rec) => rec.listed.size > 0 || rec.state === 'alive')
      .map((rec) => rec.ip);
  }

  isAlive(ip: string): boolean {
    return this.peers.get(ip)?.state === 'alive';
  }

  /** Every known peer, for `/status`. */
  status(): PeerStatus[] {
    return this.sorted().map((rec) => {
      const sources: PeerSource[] = (['dns', 'static'] as const).filter((s) => rec.listed.has(s));
      if (rec.control) sources.push('control');
      return {
        ip: rec.ip,
        state: rec.state,
        lastSeen: rec.lastSeen === null ? null : new Date(rec.lastSeen).toISOString(),
        groups: rec.groups,
        sources,
        ...(rec.suspect && rec.state === 'alive' ? { suspect: true } : {}),
        ...(rec.truncated > 0 ? { groupsTruncated: rec.truncated } : {}),
      };
    });
  }

  get size(): number {
    return this.peers.size;
  }

  private sorted(): PeerRecord[] {
    return [...this.peers.values()].sort((a, b) => compareIpv4(a.ip, b.ip));
  }

  private record(ip: string): PeerRecord {
    let rec = this.peers.get(ip);
    if (rec === undefined) {
      rec = {
        ip,
        listed: new Set(),
        control: false,
        state: 'pending',
        lastSeen: null,
        quietSince: 0,
        suspect: false,
        truncated: 0,
        inactiveSince: null,
        incarnation: null,
        mac: '',
        overlay: '',
        groups: [],
        floorSeq: -1,
        assembly: null,
      };
      this.peers.set(ip, rec);
    }
    return rec;
  }
}
