/**
 * Wire format of the membership control protocol (STATE and LEAVE), pure: no sockets, no clock.
 * The byte layout, limits and versioning rules are specified in docs/protocol.md; keep the two in
 * step. `decode` is fed untrusted datagrams and never throws: every problem is a `reason`.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { canonicalGroup, compareGroups, familyOf, isRoutableGroup } from '../net/groups.js';
import { formatIpv4, isRoutableMulticast, isUnicast, parseIpv4 } from '../net/ipv4.js';
import { formatIpv6, isIpv6RoutableMulticast, isIpv6Unicast, parseIpv6 } from '../net/ipv6.js';

export const MAGIC = Buffer.from('KMCP', 'ascii');
/** The newest version this agent reads and writes (it reads every version from 1 up). */
export const PROTOCOL_VERSION = 2;
/** The versions `decode` reads. */
export const SUPPORTED_VERSIONS: readonly number[] = [1, 2];
/** Version 1: magic 4, version 1, type 1, flags 1, reserved 1, incarnation 8, seq 8, timestamp 8,
 *  sender 4, overlay 4, MAC 6, part 2, parts 2, label length 1. */
export const FIXED_HEADER_SIZE = 51;
/** Version 2: as version 1 with 16-byte sender and overlay addresses (IPv4 as ::ffff:a.b.c.d). */
export const FIXED_HEADER_SIZE_V2 = 75;
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

/** Where the fields after the timestamp sit in each version (docs/protocol.md). */
interface Layout {
  readonly version: 1 | 2;
  readonly addrSize: 4 | 16;
  readonly sender: number;
  readonly overlay: number;
  readonly mac: number;
  readonly part: number;
  readonly parts: number;
  readonly labelLength: number;
  readonly header: number;
}
const V1: Layout = { version: 1, addrSize: 4, sender: 32, overlay: 36, mac: 40, part: 46, parts: 48, labelLength: 50, header: FIXED_HEADER_SIZE };
const V2: Layout = { version: 2, addrSize: 16, sender: 32, overlay: 48, mac: 64, part: 70, parts: 72, labelLength: 74, header: FIXED_HEADER_SIZE_V2 };

export type MessageType = 'state' | 'leave';

/** Why `decode` refused a datagram; each is a metric label, so the set is closed. */
export type DecodeFailure = 'malformed' | 'bad_mac' | 'wrong_cluster' | 'unsupported_version';

/** The fields both message types carry. */
export interface MessageFields {
  readonly type: MessageType;
  /** The sender's IP (pod IP, or node IP in node mode), IPv4 or IPv6; a receiver believes it only if it equals the datagram source. */
  readonly sender: string;
  /** 16 hex digits chosen at random when the sending agent starts. */
  readonly incarnation: string;
  /** Per-sender counter, strictly increasing over every datagram the incarnation sends. */
  readonly seq: number;
  /** Sender's clock, ms since the Unix epoch (checked against the replay window). */
  readonly timestamp: number;
  /** The sender's vx0 MAC, lower-case colon form. */
  readonly mac: string;
  /** The sender's vx0 (overlay) address, IPv4 or IPv6; "0.0.0.0" for none. */
  readonly overlay: string;
  /** 0-based index of this datagram in its STATE, and how many datagrams the STATE has. */
  readonly part: number;
  readonly parts: number;
  /** Routable groups in this datagram (a slice of the sender's full set), IPv4 then IPv6, canonical text. */
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

export type DecodeResult = { readonly ok: true; readonly msg: ControlMessage } | { readonly ok: false; readonly reason: DecodeFailure; readonly version?: number };

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

const MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/**
 * An address field: 'none' when all zero, the text of a unicast address, or undefined when it is
 * neither. In version 2 an IPv4 address is written IPv4-mapped (::ffff:a.b.c.d) and read back as
 * the dotted quad, so one peer has one spelling whatever version it speaks.
 */
function readAddress(buf: Buffer, offset: number, size: 4 | 16): string | 'none' | undefined {
  const field = buf.subarray(offset, offset + size);
  if (field.every((b) => b === 0)) return 'none';
  if (size === 4) {
    const v = field.readUInt32BE(0);
    return isUnicast(v) ? formatIpv4(v) : undefined;
  }
  if (field.subarray(0, 12).equals(MAPPED_PREFIX)) {
    const v = field.readUInt32BE(12);
    return isUnicast(v) ? formatIpv4(v) : undefined;
  }
  return isIpv6Unicast(field) ? formatIpv6(field) : undefined;
}

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
  const L = buf[4] === 1 ? V1 : buf[4] === 2 ? V2 : undefined;
  if (L === undefined) return { ok: false, reason: 'unsupported_version', version: buf[4]! };
  if (buf.length < L.header + 2) return fail('malformed');

  const typeByte = buf[5];
  const type: MessageType | undefined = typeByte === TYPE_STATE ? 'state' : typeByte === TYPE_LEAVE ? 'leave' : undefined;
  const flags = buf.readUInt8(6);
  if (type === undefined || (flags & ~KNOWN_FLAGS) !== 0 || buf[7] !== 0) return fail('malformed');
  const signed = (flags & FLAG_AUTH) !== 0;

  const labelLength = buf.readUInt8(L.labelLength);
  const groupsAt = L.header + labelLength;
  if (labelLength === 0 || buf.length < groupsAt + 2) return fail('malformed');
  const v4Count = buf.readUInt16BE(groupsAt);
  const v6At = groupsAt + 2 + 4 * v4Count;
  let v6Count = 0;
  if (L.version === 2) {
    if (buf.length < v6At + 2) return fail('malformed');
    v6Count = buf.readUInt16BE(v6At);
  }
  const bodyLength = L.version === 2 ? v6At + 2 + 16 * v6Count : v6At;
  if (buf.length !== bodyLength + (signed ? MAC_SIZE : 0)) return fail('malformed');

  const seq = readU64(buf, 16);
  const timestamp = readU64(buf, 24);
  const sender = readAddress(buf, L.sender, L.addrSize);
  const part = buf.readUInt16BE(L.part);
  const parts = buf.readUInt16BE(L.parts);
  if (seq === null || timestamp === null || sender === undefined || sender === 'none') return fail('malformed');
  if (parts < 1 || parts > MAX_PARTS || part >= parts || seq < part) return fail('malformed');
  if (type === 'leave' && (parts !== 1 || v4Count + v6Count !== 0)) return fail('malformed');
  // A STATE's overlay address and MAC describe a unicast endpoint: both unicast, or both zero for
  // "none" (node mode: the peer is its node IP). A LEAVE's are informative and may be anything.
  const overlayField = readAddress(buf, L.overlay, L.addrSize);
  if (type === 'state') {
    const macZero = buf.readUIntBE(L.mac, 6) === 0;
    const none = overlayField === 'none' && macZero;
    if (!none && (overlayField === undefined || overlayField === 'none' || !isUnicastMac(buf, L.mac))) return fail('malformed');
  }

  let cluster: string;
  try {
    cluster = utf8.decode(buf.subarray(L.header, groupsAt));
  } catch {
    return fail('malformed');
  }

  const groups: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < v4Count; i++) {
    const value = buf.readUInt32BE(groupsAt + 2 + 4 * i);
    if (!isRoutableMulticast(value)) return fail('malformed');
    const text = formatIpv4(value);
    if (seen.has(text)) return fail('malformed');
    seen.add(text);
    groups.push(text);
  }
  for (let i = 0; i < v6Count; i++) {
    const field = buf.subarray(v6At + 2 + 16 * i, v6At + 18 + 16 * i);
    if (!isIpv6RoutableMulticast(field)) return fail('malformed');
    const text = formatIpv6(field);
    if (seen.has(text)) return fail('malformed');
    seen.add(text);
    groups.push(text);
  }

  // Raw bytes, not decoded text: TextDecoder drops a leading BOM, so "\uFEFF<label>" would match.
  if (!buf.subarray(L.header, groupsAt).equals(Buffer.from(options.cluster, 'utf8'))) return fail('wrong_cluster');

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
      version: L.version,
      sender,
      incarnation: buf.subarray(8, 16).toString('hex'),
      seq,
      timestamp,
      mac: formatMac(buf, L.mac),
      overlay: overlayField === 'none' || overlayField === undefined ? '0.0.0.0' : overlayField,
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

/** The address as `size` bytes (IPv4-mapped in a 16-byte field); throws on text that is no address or does not fit. */
function addressBytes(text: string, size: 4 | 16, what: string): Buffer {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) {
    const out = Buffer.alloc(size);
    if (size === 16 && v4 !== 0) MAPPED_PREFIX.copy(out, 0);
    out.writeUInt32BE(v4, size - 4);
    return out;
  }
  const v6 = size === 16 ? parseIpv6(text) : undefined;
  if (v6 === undefined) throw new TypeError(`encode control message: bad ${what} address ${JSON.stringify(text)}${size === 4 ? ' for version 1' : ''}`);
  return v6;
}

/** Version 1 when every address and group is IPv4 (so agents that read only version 1 still do), 2 otherwise. */
export function versionFor(sender: string, overlay: string, groups: readonly string[]): 1 | 2 {
  return familyOf(sender) === 4 && familyOf(overlay) === 4 && groups.every((g) => familyOf(g) === 4) ? 1 : 2;
}

/**
 * Encodes one datagram exactly as given (signed with `key` when set), in the lowest version that
 * can carry it (`versionFor`) unless `version` says which. Throws TypeError/RangeError on fields
 * no decoder would accept: those are bugs in the caller, not input to tolerate.
 */
export function encodeMessage(fields: MessageFields, key?: Buffer, version?: 1 | 2): Buffer {
  const L = (version ?? versionFor(fields.sender, fields.overlay, fields.groups)) === 1 ? V1 : V2;
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
  const v4: number[] = [];
  const v6: Buffer[] = [];
  for (const group of fields.groups) {
    const a = parseIpv4(group);
    if (a !== undefined) v4.push(a);
    else {
      const b = L.version === 2 ? parseIpv6(group) : undefined;
      if (b === undefined) throw new TypeError(`encode control message: bad group address ${JSON.stringify(group)}${L.version === 1 ? ' for version 1' : ''}`);
      v6.push(b);
    }
  }
  const groupsAt = L.header + label.length;
  const v6At = groupsAt + 2 + 4 * v4.length;
  const bodyLength = L.version === 2 ? v6At + 2 + 16 * v6.length : v6At;
  const buf = Buffer.alloc(bodyLength + (key ? MAC_SIZE : 0));
  MAGIC.copy(buf, 0);
  buf[4] = L.version;
  buf[5] = fields.type === 'state' ? TYPE_STATE : TYPE_LEAVE;
  buf[6] = key ? FLAG_AUTH : 0;
  buf[7] = 0;
  Buffer.from(fields.incarnation, 'hex').copy(buf, 8);
  writeU64(buf, 16, fields.seq);
  writeU64(buf, 24, fields.timestamp);
  addressBytes(fields.sender, L.addrSize, 'sender').copy(buf, L.sender);
  addressBytes(fields.overlay, L.addrSize, 'overlay').copy(buf, L.overlay);
  parseMac(fields.mac).copy(buf, L.mac);
  buf.writeUInt16BE(fields.part, L.part);
  buf.writeUInt16BE(fields.parts, L.parts);
  buf.writeUInt8(label.length, L.labelLength);
  label.copy(buf, L.header);
  buf.writeUInt16BE(v4.length, groupsAt);
  v4.forEach((g, i) => buf.writeUInt32BE(g, groupsAt + 2 + 4 * i));
  if (L.version === 2) {
    buf.writeUInt16BE(v6.length, v6At);
    v6.forEach((g, i) => g.copy(buf, v6At + 2 + 16 * i));
  }
  if (key) hmac(key, buf.subarray(0, bodyLength)).copy(buf, bodyLength);
  return buf;
}

/** What an agent announces about itself; the sender address comes from the Encoder. */
export interface LocalState {
  readonly mac: string;
  readonly overlay: string;
  /** Joined groups of either family; link-local ones (224.0.0.0/24, ffX2::) are left out (they always flood), duplicates dropped. */
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

/** Routable groups (canonical text, IPv4 then IPv6) without duplicates; throws on a non-multicast address (a bug). */
export function normalizeGroups(groups: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const group of groups) {
    const g = canonicalGroup(group);
    if (g === undefined) throw new TypeError(`encode STATE: ${JSON.stringify(group)} is not a multicast group`);
    if (isRoutableGroup(g)) out.add(g);
  }
  return [...out].sort(compareGroups);
}

function groupBytes(group: string): number {
  return familyOf(group) === 6 ? 16 : 4;
}

/**
 * The sending side of one agent incarnation: owns the sequence counter so that every datagram it
 * produces has a higher number than the one before, whichever peer it is sent to. Each STATE goes
 * out in the lowest version that carries it: version 1 while sender, overlay and groups are IPv4
 * (agents that read only version 1 keep working), version 2 once anything is IPv6.
 */
export class Encoder {
  readonly incarnation: string;
  readonly sender: string;
  private readonly cluster: string;
  private key: Buffer | undefined;
  private readonly maxDatagram: number;
  private seq = 1;

  constructor(options: EncoderOptions) {
    this.sender = options.sender;
    this.cluster = options.cluster;
    this.key = options.key;
    this.incarnation = options.incarnation ?? newIncarnation();
    this.maxDatagram = options.maxDatagram ?? DEFAULT_MAX_DATAGRAM;
    if (this.groupsPerDatagram < 1) {
      throw new RangeError(`create control encoder: a ${this.maxDatagram}-byte datagram cannot hold one group (overhead ${this.overhead(1)} bytes)`);
    }
    // Fail at start, not at the first send, on a bad sender or label.
    encodeMessage(this.fields('leave', { mac: '00:00:00:00:00:00', overlay: '0.0.0.0' }, 0, 0, 1, [], 0), this.key);
  }

  /** Bytes of a datagram besides its group addresses. */
  private overhead(version: 1 | 2): number {
    return (version === 1 ? FIXED_HEADER_SIZE + 2 : FIXED_HEADER_SIZE_V2 + 4) + Buffer.byteLength(this.cluster) + (this.key ? MAC_SIZE : 0);
  }

  /** Group bytes one datagram holds in `version`. */
  private budget(version: 1 | 2): number {
    return this.maxDatagram - this.overhead(version);
  }

  /** The sequence number the next datagram will carry. */
  get nextSeq(): number {
    return this.seq;
  }

  /** IPv4 groups that fit in one version-1 datagram. */
  get groupsPerDatagram(): number {
    return Math.floor(this.budget(1) / 4);
  }

  /** Most IPv4 groups one STATE carries: the parts limit, and MAX_ANNOUNCED_GROUPS. */
  get maxGroups(): number {
    return Math.min(this.groupsPerDatagram * MAX_PARTS, MAX_ANNOUNCED_GROUPS);
  }

  /**
   * Changes the signing key (key rotation at run time). Signed stays signed: the datagram
   * overhead, and so the groups per datagram, do not change.
   */
  setKey(key: Buffer): void {
    if (this.key === undefined) throw new TypeError('control encoder: cannot start signing at run time (restart with --key-file)');
    this.key = key;
  }

  /** `groups` (normalized) cut into datagram-sized slices, in order; each slice fits `budget`. */
  private split(groups: readonly string[], version: 1 | 2): string[][] {
    const budget = this.budget(version);
    const out: string[][] = [[]];
    let used = 0;
    for (const g of groups) {
      const size = groupBytes(g);
      if (used + size > budget) {
        out.push([]);
        used = 0;
      }
      out[out.length - 1]!.push(g);
      used += size;
    }
    return out;
  }

  /**
   * Like `state`, but a set that needs more than MAX_PARTS datagrams or MAX_ANNOUNCED_GROUPS is
   * cut to its lowest groups (IPv4 first, then IPv6, numeric order) instead of throwing; says how
   * many were announced and left out.
   */
  stateCapped(state: LocalState, now: number): { datagrams: Buffer[]; announced: number; dropped: number } {
    const all = normalizeGroups(state.groups);
    const first = all.slice(0, MAX_ANNOUNCED_GROUPS);
    const announced = this.split(first, versionFor(this.sender, state.overlay, first))
      .slice(0, MAX_PARTS)
      .flat();
    const dropped = all.length - announced.length;
    return { datagrams: this.state({ ...state, groups: announced }, now), announced: announced.length, dropped };
  }

  /** The full STATE as one or more datagrams, consecutive sequence numbers, same timestamp. */
  state(state: LocalState, now: number): Buffer[] {
    const groups = normalizeGroups(state.groups);
    const version = versionFor(this.sender, state.overlay, groups);
    const slices = this.split(groups, version);
    if (slices.length > MAX_PARTS) {
      throw new RangeError(`encode STATE: ${groups.length} groups need ${slices.length} datagrams, more than the limit of ${MAX_PARTS}; ` + 'raise the datagram size or join fewer groups');
    }
    const base = this.seq;
    this.seq += slices.length;
    return slices.map((slice, part) => encodeMessage(this.fields('state', state, base + part, part, slices.length, slice, now), this.key, version));
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
  return [...new Set(groups)].sort(compareGroups);
}
