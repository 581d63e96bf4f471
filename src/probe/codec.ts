/**
 * Probe datagram codec (pure). Every probe datagram carries what a receiver needs to compute loss,
 * duplicates, reordering and one-way latency without any other channel:
 *
 *   offset size
 *        0    4  magic "KMCP"
 *        4    1  version (1)
 *        5    1  flags: 1 = HELLO (not data: "I joined", see probe.ts), 2 = LISTENER (sends no data),
 *                 4 = READY ("I have heard every peer I expect", on HELLOs and data alike)
 *        6    1  length of the sender id in bytes (1..MAX_ID_BYTES)
 *        7    1  reserved (0)
 *        8    4  session: random per run, so a restarted sender is a new stream, not duplicates
 *       12    4  sequence number, 0-based
 *       16    4  total number of datagrams this run will send (0 = unknown)
 *       20    8  send time, epoch milliseconds as float64 (sub-millisecond precision)
 *       28    n  sender id, UTF-8
 *     28+n    …  zero padding up to --size
 *
 * Big-endian throughout. Datagrams that do not start with the magic are tried as iperf2 UDP
 * datagrams (id, tv_sec, tv_usec), so an iperf2 client can act as a sender the probe counts —
 * a cross-check of the probe against an independent tool.
 */

export const MAGIC = 0x4b4d4350; // "KMCP"
export const VERSION = 1;
export const FIXED_HEADER_BYTES = 28;
export const MAX_ID_BYTES = 64;
export const FLAG_HELLO = 1;
export const FLAG_LISTENER = 2;
export const FLAG_READY = 4;
/** The largest UDP payload of one unfragmented IPv4 datagram on a 64 KiB limit. */
export const MAX_DATAGRAM_BYTES = 65_507;

export interface ProbePacket {
  readonly kind: 'probe';
  readonly session: number;
  readonly seq: number;
  /** Datagrams the sender will send in this run; 0 when it does not know. */
  readonly total: number;
  /** Send time, epoch ms. */
  readonly sentAt: number;
  readonly id: string;
  /** A HELLO datagram: the sender has joined; it is not part of the data stream. */
  readonly hello: boolean;
  /** The sender only listens (--receive-only): expect no data from it. */
  readonly listener: boolean;
  /** The sender has heard every peer it expects: the path from each of them to it works. */
  readonly ready: boolean;
}

export interface IperfPacket {
  readonly kind: 'iperf2';
  /** Datagram id; iperf2 marks the end of a test with negative ids (repeated FIN datagrams). */
  readonly seq: number;
  readonly sentAt: number;
}

export type Decoded = ProbePacket | IperfPacket | { readonly kind: 'unknown'; readonly reason: string };

/** Bytes of header for a sender id: the smallest valid --size. */
export function headerBytes(id: string): number {
  return FIXED_HEADER_BYTES + Buffer.byteLength(id, 'utf8');
}

export interface EncodeFields {
  readonly session: number;
  readonly seq: number;
  readonly total: number;
  readonly sentAt: number;
  readonly flags?: number;
}

/**
 * A reusable datagram template for one sender: the id and padding are written once; each send
 * only rewrites sequence and timestamp (the hot path at 10k+ pps allocates nothing).
 */
export function makeTemplate(id: string, size: number): Buffer {
  const idBytes = Buffer.from(id, 'utf8');
  if (idBytes.length < 1 || idBytes.length > MAX_ID_BYTES) {
    throw new RangeError(`encode probe id: ${idBytes.length} bytes (must be 1..${MAX_ID_BYTES})`);
  }
  const min = FIXED_HEADER_BYTES + idBytes.length;
  if (!Number.isInteger(size) || size < min || size > MAX_DATAGRAM_BYTES) {
    throw new RangeError(`encode probe datagram: size ${size} (must be ${min}..${MAX_DATAGRAM_BYTES} for id "${id}")`);
  }
  const buf = Buffer.alloc(size);
  buf.writeUInt32BE(MAGIC, 0);
  buf.writeUInt8(VERSION, 4);
  buf.writeUInt8(0, 5);
  buf.writeUInt8(idBytes.length, 6);
  idBytes.copy(buf, FIXED_HEADER_BYTES);
  return buf;
}

/** Writes the per-datagram fields into a template made by makeTemplate (in place). */
export function stamp(template: Buffer, fields: EncodeFields): Buffer {
  template.writeUInt8(fields.flags ?? 0, 5);
  template.writeUInt32BE(fields.session >>> 0, 8);
  template.writeUInt32BE(fields.seq >>> 0, 12);
  template.writeUInt32BE(fields.total >>> 0, 16);
  template.writeDoubleBE(fields.sentAt, 20);
  return template;
}

export function encode(id: string, size: number, fields: EncodeFields): Buffer {
  return stamp(makeTemplate(id, size), fields);
}

/** iperf2's UDP header: int32 id, uint32 tv_sec, uint32 tv_usec (then more we do not need). */
const IPERF_HEADER_BYTES = 12;

export function decode(buf: Buffer): Decoded {
  if (buf.length >= 4 && buf.readUInt32BE(0) === MAGIC) {
    if (buf.length < FIXED_HEADER_BYTES) return { kind: 'unknown', reason: 'short probe header' };
    const version = buf.readUInt8(4);
    if (version !== VERSION) return { kind: 'unknown', reason: `probe version ${version}` };
    const flags = buf.readUInt8(5);
    const idLen = buf.readUInt8(6);
    if (idLen < 1 || FIXED_HEADER_BYTES + idLen > buf.length) return { kind: 'unknown', reason: 'bad id length' };
    return {
      kind: 'probe',
      session: buf.readUInt32BE(8),
      seq: buf.readUInt32BE(12),
      total: buf.readUInt32BE(16),
      sentAt: buf.readDoubleBE(20),
      id: buf.toString('utf8', FIXED_HEADER_BYTES, FIXED_HEADER_BYTES + idLen),
      hello: (flags & FLAG_HELLO) !== 0,
      listener: (flags & FLAG_LISTENER) !== 0,
      ready: (flags & FLAG_READY) !== 0,
    };
  }
  if (buf.length >= IPERF_HEADER_BYTES) {
    const sec = buf.readUInt32BE(4);
    const usec = buf.readUInt32BE(8);
    // Anything else of this size would pass; tv_usec < 1e6 weeds out most random payloads.
    if (usec >= 1_000_000) return { kind: 'unknown', reason: 'not a probe or iperf2 datagram' };
    return { kind: 'iperf2', seq: buf.readInt32BE(0), sentAt: sec * 1000 + usec / 1000 };
  }
  return { kind: 'unknown', reason: 'not a probe or iperf2 datagram' };
}
