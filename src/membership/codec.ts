/**
 * Wire format of the membership control protocol (STATE and LEAVE), pure: no sockets, no clock.
 * The byte layout, limits and versioning rules are specified in docs/protocol.md; keep the two in
 * step. `decode` is fed untrusted datagrams and never throws: every problem is a `reason`.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { compareIpv4, formatIpv4, isMulticast, isRoutableMulticast, isUnicast, parseIpv4 } from '../net/ipv4.js';

export const MAGIC = Buffer.from('KMCP', 'ascii');
export const PROTOCOL_VERSION = 1;
/** magic 4, version 1, type 1, flags 1, reserved 1, incarnation 8, seq 8, timestamp 8,
 *  sender 4, overlay 4, MAC 6, part 2, parts 2, label length 1. */
export const FIXED_HEADER_SIZE = 51;
export const MAC_SIZE = 32;
/** Default largest datagram: fits a 1450-byte vx0-sized path and a 1500-byte underlay with room. */
export const DEFAULT_MAX_DATAGRAM = 1400;
/** A STATE may span at most this many datagrams; bounds what a receiver buffers per peer. */
export const MAX_PARTS = 64;
export const MAX_LABEL_BYTES = 255;
/**
 * Most groups one agent announces: the rest of a bigger set is left out (logged, counted, flagged
 * on /status) rather than making STATE impossible to send. Receivers keep as many per peer.
 */
export const MAX_ANNOUNCED_GROUPS = 20_000;

const TYPE_STATE = 1;
const TYPE_LEAVE = 2;
const FLAG_AUTH = 0x01;
const KNOWN_FLAGS = FLAG_AUTH;

export type MessageType = 'state' | 'leave';

/** Why `decode` refused a datagram; each is a metric label, so the set is closed. */
export type DecodeFailure = 'malformed' | 'bad_mac' | 'wrong_cluster' | 'unsupported_version';

/** The fields both message types carry. */
export interface MessageFields {
  readonly type: MessageType;
  /** The sender's pod IPv4 address; a receiver believes it only if it equals the datagram source. */
  readonly sender: string;
  /** 16 hex digits chosen at random when the sending agent starts. */
  readonly incarnation: string;
  /** Per-sender counter, strictly increasing over every datagram the incarnation sends. */
  readonly seq: number;
  /** Sender's clock, ms since the Unix epoch (checked against the replay window). */
  readonly timestamp: number;
  /** The sender's vx0 MAC, lower-case colon form. */
  readonly mac: string;
  /** The sender's vx0 (overlay) IPv4 address. */
  readonly overlay: string;
  /** 0-based index of this datagram in its STATE, and how many datagrams the STATE has. */
  readonly part: number;
  readonly parts: number;
  /** Routable IPv4 groups in this datagram (a slice of the sender's full set). */
  readonly groups: readonly string[];
  /** Cluster label (service + VNI): messages of another overlay are refused. */
  readonly cluster: string;
}

export interface ControlMessage extends MessageFields {
  readonly version: number;
  /** True when the HMAC was checked against one of the receiver's keys. */
  readonly authenticated: boolean;
  /** Index of the key that verified it (0 = the signing key), -1 when not authenticated. */
  readonly keyIndex: number;
}

export type DecodeResult = { readonly ok: true; readonly msg: ControlMessage } | { readonly ok: false; readonly reason: DecodeFailure };

export interface DecodeOptions {
  /** Verification keys; empty = unauthenticated mode (signed datagrams are read, not verified). */
  readonly keys: readonly Buffer[];
  readonly cluster: string;
}

/**
 * The label every member of one overlay must share: all pods use the same --service text and
 * --vni. A name too long for the 255-byte field is replaced by its SHA-256 (still unique).
 */
export function clusterLabel(service: string | undefined, vni: number): string {
  const label = `${vni}/${service ?? ''}`;
  if (Buffer.byteLength(label) <= MAX_LABEL_BYTES) return label;
  return `${vni}/sha256:${createHash('sha256')
    .update(service ?? '')
    .digest('hex')}`;
}

/** A fresh random 64-bit incarnation, as 16 hex digits. */
export function newIncarnation(): string {
  return randomBytes(8).toString('hex');
}

function fail(reason: DecodeFailure): DecodeResult {
  return { ok: false, reason };
}

function readU64(buf: Buffer, offset: number): number | null {
  const high = buf.readUInt32BE(offset);
  // Above 2^53 a JS number loses integers; no honest sender gets there (it is ~285 000 years of ms).
  if (high > 0x1fffff) return null;
  return high * 0x1_0000_0000 + buf.readUInt32BE(offset + 4);
}

function writeU64(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), offset);
  buf.writeUInt32BE(value % 0x1_0000_0000, offset + 4);
}

/** Not all-zero and the group bit (least significant bit of the first octet) clear. */
function isUnicastMac(buf: Buffer, offset: number): boolean {
  if ((buf[offset]! & 1) !== 0) return false;
  for (let i = 0; i < 6; i++) if (buf[offset + i] !== 0) return true;
  return false;
}

function formatMac(buf: Buffer, offset: number): string {
  return [...buf.subarray(offset, offset + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

function hmac(key: Buffer, body: Buffer): Buffer {
  return createHmac('sha256', key).update(body).digest();
}

// ignoreBOM: keep a leading BOM in the text, so the label reads as the bytes it is.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decodes one datagram. Checks, in order: magic (malformed), version (unsupported_version), exact
 * structure and field ranges (malformed), cluster label (wrong_cluster), then the HMAC when keys
 * are set (bad_mac). The label is compared before the MAC so that a neighbour overlay sharing the
 * Secret by mistake is reported as what it is.
 */
export function decode(buf: Buffer, options: DecodeOptions): DecodeResult {
  try {
    return decodeUnsafe(buf, options);
  } catch {
    // Every read below is bounds-checked; this is the last line of the "never throws" promise.
    return fail('malformed');
  }
}

function decodeUnsafe(buf: Buffer, options: DecodeOptions): DecodeResult {
  if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return fail('malformed');
  if (buf.length < 5) return fail('malformed');
  if (buf[4] !== PROTOCOL_VERSION) return fail('unsupported_version');
  if (buf.length < FIXED_HEADER_SIZE + 2) return fail('malformed');

  const typeByte = buf[5];
  const type: MessageType | undefined = typeByte === TYPE_STATE ? 'state' : typeByte === TYPE_LEAVE ? 'leave' : undefined;
  const flags = buf.readUInt8(6);
  if (type === undefined || (flags & ~KNOWN_FLAGS) !== 0 || buf[7] !== 0) return fail('malformed');
  const signed = (flags & FLAG_AUTH) !== 0;

  const labelLength = buf.readUInt8(50);
  const groupsAt = FIXED_HEADER_SIZE + labelLength;
  if (labelLength === 0 || buf.length < groupsAt + 2) return fail('malformed');
  const groupCount = buf.readUInt16BE(groupsAt);
  const bodyLength = groupsAt + 2 + 4 * groupCount;
  if (buf.length !== bodyLength + (signed ? MAC_SIZE : 0)) return fail('malformed');

  const seq = readU64(buf, 16);
  const timestamp = readU64(buf, 24);
  const senderValue = buf.readUInt32BE(32);
  const part = buf.readUInt16BE(46);
  const parts = buf.readUInt16BE(48);
  if (seq === null || timestamp === null || !isUnicast(senderValue)) return fail('malformed');
  if (parts < 1 || parts > MAX_PARTS || part >= parts || seq < part) return fail('malformed');
  if (type === 'leave' && (parts !== 1 || groupCount !== 0)) return fail('malformed');
  // A STATE's overlay address and MAC describe a unicast endpoint: both unicast, or both zero for
  // "none" (node mode: the peer is its node IP). A LEAVE's are informative and may be anything.
  if (type === 'state') {
    const overlay = buf.readUInt32BE(36);
    const none = overlay === 0 && buf.readUIntBE(40, 6) === 0;
    if (!none && (!isUnicast(overlay) || !isUnicastMac(buf, 40))) return fail('malformed');
  }

  let cluster: string;
  try {
    cluster = utf8.decode(buf.subarray(FIXED_HEADER_SIZE, groupsAt));
  } catch {
    return fail('malformed');
  }

  const groups: string[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < groupCount; i++) {
    const value = buf.readUInt32BE(groupsAt + 2 + 4 * i);
    if (!isRoutableMulticast(value) || seen.has(value)) return fail('malformed');
    seen.add(value);
    groups.push(formatIpv4(value));
  }

  // Raw bytes, not decoded text: TextDecoder drops a leading BOM, so "\uFEFF<label>" would match.
  if (!buf.subarray(FIXED_HEADER_SIZE, groupsAt).equals(Buffer.from(options.cluster, 'utf8'))) return fail('wrong_cluster');

  let keyIndex = -1;
  if (options.keys.length > 0) {
    if (!signed) return fail('bad_mac');
    const body = buf.subarray(0, bodyLength);
    const trailer = buf.subarray(bodyLength);
    // Try every key (rotation: the first signs, all verify); compare in constant time so the
    // time taken does not tell a forger how many leading bytes of the MAC were right.
    options.keys.forEach((key, index) => {
      if (keyIndex < 0 && timingSafeEqual(hmac(key, body), trailer)) keyIndex = index;
    });
    if (keyIndex < 0) return fail('bad_mac');
  }

  return {
    ok: true,
    msg: {
      type,
      version: PROTOCOL_VERSION,
      sender: formatIpv4(senderValue),
      incarnation: buf.subarray(8, 16).toString('hex'),
      seq,
      timestamp,
      mac: formatMac(buf, 40),
      overlay: formatIpv4(buf.readUInt32BE(36)),
      part,
      parts,
      groups,
      cluster,
      authenticated: keyIndex >= 0,
      keyIndex,
    },
  };
}

function parseMac(text: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) throw new TypeError(`encode control message: bad MAC ${JSON.stringify(text)}`);
  return Buffer.from(text.replaceAll(':', ''), 'hex');
}

function requireIPv4(text: string, what: string): number {
  const value = parseIpv4(text);
  if (value === undefined) throw new TypeError(`encode control message: bad ${what} address ${JSON.stringify(text)}`);
  return value;
}

/**
 * Encodes one datagram exactly as given (signed with `key` when set). Throws TypeError/RangeError
 * on fields no decoder would accept: those are bugs in the caller, not input to tolerate.
 */
export function encodeMessage(fields: MessageFields, key?: Buffer): Buffer {
  const label = Buffer.from(fields.cluster, 'utf8');
  if (label.length < 1 || label.length > MAX_LABEL_BYTES) {
    throw new RangeError(`encode control message: cluster label must be 1-${MAX_LABEL_BYTES} bytes, got ${label.length}`);
  }
  if (!/^[0-9a-f]{16}$/.test(fields.incarnation)) throw new TypeError('encode control message: incarnation must be 16 hex digits');
  for (const [name, value] of [
    ['seq', fields.seq],
    ['timestamp', fields.timestamp],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`encode control message: bad ${name} ${value}`);
  }
  if (fields.parts < 1 || fields.parts > MAX_PARTS || fields.part < 0 || fields.part >= fields.parts || fields.seq < fields.part) {
    throw new RangeError(`encode control message: bad part ${fields.part}/${fields.parts} at seq ${fields.seq}`);
  }
  const groupsAt = FIXED_HEADER_SIZE + label.length;
  const bodyLength = groupsAt + 2 + 4 * fields.groups.length;
  const buf = Buffer.alloc(bodyLength + (key ? MAC_SIZE : 0));
  MAGIC.copy(buf, 0);
  buf[4] = PROTOCOL_VERSION;
  buf[5] = fields.type === 'state' ? TYPE_STATE : TYPE_LEAVE;
  buf[6] = key ? FLAG_AUTH : 0;
  buf[7] = 0;
  Buffer.from(fields.incarnation, 'hex').copy(buf, 8);
  writeU64(buf, 16, fields.seq);
  writeU64(buf, 24, fields.timestamp);
  buf.writeUInt32BE(requireIPv4(fields.sender, 'sender'), 32);
  buf.writeUInt32BE(requireIPv4(fields.overlay, 'overlay'), 36);
  parseMac(fields.mac).copy(buf, 40);
  buf.writeUInt16BE(fields.part, 46);
  buf.writeUInt16BE(fields.parts, 48);
  buf.writeUInt8(label.length, 50);
  label.copy(buf, FIXED_HEADER_SIZE);
  buf.writeUInt16BE(fields.groups.length, groupsAt);
  fields.groups.forEach((group, i) => buf.writeUInt32BE(requireIPv4(group, 'group'), groupsAt + 2 + 4 * i));
  if (key) hmac(key, buf.subarray(0, bodyLength)).copy(buf, bodyLength);
  return buf;
}

/** What an agent announces about itself; the sender address comes from the Encoder. */
export interface LocalState {
  readonly mac: string;
  readonly overlay: string;
  /** Joined groups; link-local 224.0.0.0/24 is left out (it always floods), duplicates dropped. */
  readonly groups: Iterable<string>;
}

export interface EncoderOptions {
  readonly sender: string;
  readonly cluster: string;
  /** Signing key (the first line of the key file); undefined = unauthenticated. */
  readonly key?: Buffer | undefined;
  /** Largest datagram to produce (default 1400 bytes). */
  readonly maxDatagram?: number;
  /** Defaults to a fresh random one. */
  readonly incarnation?: string;
}

/** Routable groups in numeric order without duplicates; throws on a non-multicast address (a bug). */
export function normalizeGroups(groups: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const group of groups) {
    const value = parseIpv4(group);
    if (value === undefined || !isMulticast(value)) throw new TypeError(`encode STATE: ${JSON.stringify(group)} is not an IPv4 multicast group`);
    if (isRoutableMulticast(value)) out.add(formatIpv4(value));
  }
  return [...out].sort(compareIpv4);
}

/**
 * The sending side of one agent incarnation: owns the sequence counter so that every datagram it
 * produces has a higher number than the one before, whichever peer it is sent to.
 */
export class Encoder {
  readonly incarnation: string;
  readonly sender: string;
  private readonly cluster: string;
  private key: Buffer | undefined;
  private readonly perPart: number;
  private seq = 1;

  constructor(options: EncoderOptions) {
    this.sender = options.sender;
    this.cluster = options.cluster;
    this.key = options.key;
    this.incarnation = options.incarnation ?? newIncarnation();
    const maxDatagram = options.maxDatagram ?? DEFAULT_MAX_DATAGRAM;
    const overhead = FIXED_HEADER_SIZE + Buffer.byteLength(this.cluster) + 2 + (this.key ? MAC_SIZE : 0);
    this.perPart = Math.floor((maxDatagram - overhead) / 4);
    if (this.perPart < 1) {
      throw new RangeError(`create control encoder: a ${maxDatagram}-byte datagram cannot hold one group (overhead ${overhead} bytes)`);
    }
    // Fail at start, not at the first send, on a bad sender or label.
    encodeMessage(this.fields('leave', { mac: '00:00:00:00:00:00', overlay: '0.0.0.0' }, 0, 0, 1, [], 0), this.key);
  }

  /** The sequence number the next datagram will carry. */
  get nextSeq(): number {
    return this.seq;
  }

  /** Groups that fit in one datagram. */
  get groupsPerDatagram(): number {
    return this.perPart;
  }

  /** Most groups one STATE carries: the parts limit, and MAX_ANNOUNCED_GROUPS. */
  get maxGroups(): number {
    return Math.min(this.perPart * MAX_PARTS, MAX_ANNOUNCED_GROUPS);
  }

  /**
   * Changes the signing key (key rotation at run time). Signed stays signed: the datagram
   * overhead, and so the groups per datagram, do not change.
   */
  setKey(key: Buffer): void {
    if (this.key === undefined) throw new TypeError('control encoder: cannot start signing at run time (restart with --key-file)');
    this.key = key;
  }

  /**
   * Like `state`, but a set bigger than `maxGroups` is cut to its lowest `maxGroups` groups
   * (numeric order) instead of throwing; says how many were announced and left out.
   */
  stateCapped(state: LocalState, now: number): { datagrams: Buffer[]; announced: number; dropped: number } {
    const all = normalizeGroups(state.groups);
    const announced = all.slice(0, this.maxGroups);
    return { datagrams: this.state({ ...state, groups: announced }, now), announced: announced.length, dropped: all.length - announced.length };
  }

  /** The full STATE as one or more datagrams, consecutive sequence numbers, same timestamp. */
  state(state: LocalState, now: number): Buffer[] {
    const groups = normalizeGroups(state.groups);
    const parts = Math.max(1, Math.ceil(groups.length / this.perPart));
    if (parts > MAX_PARTS) {
      throw new RangeError(`encode STATE: ${groups.length} groups need ${parts} datagrams, more than the limit of ${MAX_PARTS}; ` + 'raise the datagram size or join fewer groups');
    }
    const base = this.seq;
    this.seq += parts;
    const out: Buffer[] = [];
    for (let part = 0; part < parts; part++) {
      const slice = groups.slice(part * this.perPart, (part + 1) * this.perPart);
      out.push(encodeMessage(this.fields('state', state, base + part, part, parts, slice, now), this.key));
    }
    return out;
  }

  /** A LEAVE: "forget me now" (sent on clean shutdown). */
  leave(now: number, state: Omit<LocalState, 'groups'> = { mac: '00:00:00:00:00:00', overlay: '0.0.0.0' }): Buffer {
    const seq = this.seq++;
    return encodeMessage(this.fields('leave', state, seq, 0, 1, [], now), this.key);
  }

  private fields(type: MessageType, state: Omit<LocalState, 'groups'>, seq: number, part: number, parts: number, groups: string[], now: number): MessageFields {
    return {
      type,
      sender: this.sender,
      incarnation: this.incarnation,
      seq,
      timestamp: now,
      mac: state.mac,
      overlay: state.overlay,
      part,
      parts,
      groups,
      cluster: this.cluster,
    };
  }
}

/**
 * The groups of a complete STATE from its parts (any order), or null when parts are missing or
 * do not belong together (other incarnation, other first sequence number, other part count).
 */
export function joinParts(msgs: readonly ControlMessage[]): string[] | null {
  const first = msgs[0];
  if (first === undefined || first.type !== 'state') return null;
  const base = first.seq - first.part;
  const byPart = new Map<number, readonly string[]>();
  for (const m of msgs) {
    if (m.type !== 'state' || m.incarnation !== first.incarnation || m.parts !== first.parts || m.seq - m.part !== base || m.sender !== first.sender) {
      return null;
    }
    byPart.set(m.part, m.groups);
  }
  if (byPart.size !== first.parts) return null;
  const groups: string[] = [];
  for (let i = 0; i < first.parts; i++) groups.push(...(byPart.get(i) ?? []));
  return [...new Set(groups)].sort(compareIpv4);
}
