/**
 * Sequenced multicast streams between lab pods, for the soak and the fault suite: python3 senders
 * on a fixed schedule (datagram i leaves at t0 + i/rate, so a lost sequence number says *when* it
 * was lost) and python3 receivers that keep a bitmap of sequence numbers per sender (received,
 * duplicates, and the ranges seen). Real socket programs, like the lab's traffic matrix.
 *
 * The analysis (missing ranges, their times, whether they fall inside restart windows) is pure
 * and lives at the top of this file; the processes below.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { KmcastError } from '../../src/errors.js';
import { findPython, spawnInNetns, waitExit } from '../../src/lab/process.js';
import type { LabPod } from '../../src/lab/types.js';

/** [first, last] sequence numbers, inclusive. */
export type SeqRange = readonly [number, number];

export interface SenderReport {
  readonly id: string;
  /** Datagrams handed to the kernel (send errors excluded). */
  readonly sent: number;
  readonly errors: number;
  /** Epoch ms of sequence number 0. */
  readonly t0: number;
  readonly rate: number;
  /** Worst lateness against the schedule (a sender that falls behind shifts loss times). */
  readonly maxLagMs: number;
}

export interface ReceiverSenderReport {
  readonly received: number;
  readonly duplicates: number;
  /** Sequence numbers seen, as sorted disjoint ranges. */
  readonly seen: readonly SeqRange[];
}

export interface ReceiverReport {
  readonly senders: Readonly<Record<string, ReceiverSenderReport>>;
  /** Times a periodic re-join succeeded: the socket had lost its membership (its interface went away). */
  readonly rejoins: number;
  readonly other: number;
}

/** A period in which loss is expected (an agent restarting), epoch ms. */
export interface Window {
  readonly label: string;
  readonly start: number;
  readonly end: number;
}

export interface PairResult {
  readonly sender: string;
  readonly receiver: string;
  readonly sent: number;
  readonly received: number;
  readonly lost: number;
  readonly duplicates: number;
  /** Loss as epoch-ms intervals [from, to) derived from the sender's schedule. */
  readonly lossTimes: readonly (readonly [number, number])[];
  /** Lost datagrams whose scheduled time falls in no window. */
  readonly lostOutsideWindows: number;
}

/** Sequence numbers in [0, sent) not covered by `seen`. Pure. */
export function missingRanges(seen: readonly SeqRange[], sent: number): SeqRange[] {
  const out: SeqRange[] = [];
  let next = 0;
  for (const [a, b] of [...seen].sort((x, y) => x[0] - y[0])) {
    if (a >= sent) break;
    if (a > next) out.push([next, a - 1]);
    next = Math.max(next, b + 1);
  }
  if (next < sent) out.push([next, sent - 1]);
  return out;
}

/** Scheduled send time (epoch ms) of sequence number `seq`. */
export function seqTime(s: Pick<SenderReport, 't0' | 'rate'>, seq: number): number {
  return s.t0 + (seq * 1000) / s.rate;
}

/** How many sequence numbers of `r` were scheduled outside every window. Pure. */
export function countOutside(s: Pick<SenderReport, 't0' | 'rate'>, r: SeqRange, windows: readonly Window[]): number {
  let n = 0;
  for (let seq = r[0]; seq <= r[1]; seq++) {
    const t = seqTime(s, seq);
    if (!windows.some((w) => t >= w.start && t <= w.end)) n++;
  }
  return n;
}

/** Per (sender, receiver) pair: received, lost, duplicates, and where the loss lies in time. Pure. */
export function analyse(senders: readonly SenderReport[], receivers: ReadonlyMap<string, ReceiverReport>, windows: readonly Window[] = []): PairResult[] {
  const out: PairResult[] = [];
  for (const [receiver, report] of receivers) {
    for (const s of senders) {
      if (s.id === receiver) continue; // a sender's own loopback copy is not the overlay's doing
      const r = report.senders[s.id] ?? { received: 0, duplicates: 0, seen: [] };
      const missing = missingRanges(r.seen, s.sent);
      const lost = missing.reduce((n, [a, b]) => n + b - a + 1, 0);
      out.push({
        sender: s.id,
        receiver,
        sent: s.sent,
        received: r.received,
        lost,
        duplicates: r.duplicates,
        lossTimes: missing.map(([a, b]) => [seqTime(s, a), seqTime(s, b + 1)] as const),
        lostOutsideWindows: missing.reduce((n, m) => n + countOutside(s, m, windows), 0),
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Processes

// Waits for t0, then sends `count` datagrams at absolute times t0 + i/rate (catching up without
// sleeping when late), padded to `size` bytes; prints READY first and a JSON report at the end.
const SENDER_PY = `
import json, socket, sys, time
group, port, nonce, sid, rate, count, t0, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 4)
if group == '255.255.255.255': s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
print('READY', flush=True)
sent, errors, lag, i = 0, 0, 0.0, 0
while i < count:
    due = t0 / 1000 + i / rate
    now = time.time()
    if now < due:
        time.sleep(due - now)
        continue
    lag = max(lag, now - due)
    msg = ('KMS %s %s %d ' % (nonce, sid, i)).encode()
    try:
        s.sendto(msg.ljust(size, b'.'), (group, port))
        sent += 1
    except OSError:
        errors += 1
    i += 1
print(json.dumps({'id': sid, 'sent': sent, 'errors': errors, 't0': t0, 'rate': rate, 'maxLagMs': lag * 1000}), flush=True)
`;

// Joins with no interface named (the route of 224.0.0.0/4 decides, as for any app). With
// rejoin > 0 it re-joins every `rejoin` ms: a membership dies with its interface (vx0 deleted and
// recreated), and an app that never re-joins would stay deaf; the count of successful re-joins is
// reported so that effect stays visible. Counts until stdin closes, drains, prints JSON.
const RECEIVER_PY = `
import json, os, select, socket, struct, sys, time
port, group, nonce, rejoin, maxs = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]) / 1000, float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(('0.0.0.0', port))
mreq = struct.pack('4s4s', socket.inet_aton(group), socket.inet_aton('0.0.0.0'))
def join():
    try:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        return True
    except OSError:
        return False
if group != '255.255.255.255' and not join():
    print('cannot join', group, file=sys.stderr, flush=True); sys.exit(1)
senders, other, rejoins = {}, 0, 0
def take(data):
    global other
    p = data.split(b' ', 4)
    if len(p) < 4 or p[0] != b'KMS' or p[1] != nonce.encode():
        other += 1; return
    st = senders.get(p[2])
    if st is None:
        st = senders[p[2]] = [bytearray(1024), 0, 0]
    seq = int(p[3])
    bm = st[0]
    if seq >= len(bm) * 8: bm.extend(bytearray(max(len(bm), seq // 8 + 1 - len(bm))))
    byte, bit = seq >> 3, 1 << (seq & 7)
    if bm[byte] & bit: st[2] += 1
    else:
        bm[byte] |= bit; st[1] += 1
print('READY', flush=True)
s.setblocking(False)
fd, end, done = sys.stdin.fileno(), time.monotonic() + maxs, False
next_join = time.monotonic() + rejoin if rejoin > 0 else float('inf')
while not done and time.monotonic() < end:
    r, _, _ = select.select([s, fd], [], [], max(0.0, min(next_join, end) - time.monotonic()))
    if s in r:
        for _ in range(256):
            try: take(s.recv(65535))
            except BlockingIOError: break
    if fd in r and not os.read(fd, 4096): done = True
    if time.monotonic() >= next_join:
        if group != '255.255.255.255' and join(): rejoins += 1
        next_join = time.monotonic() + rejoin
while True:
    try: take(s.recv(65535))
    except BlockingIOError: break
def ranges(bm):
    out, start = [], None
    for i in range(len(bm) * 8):
        on = bm[i >> 3] & (1 << (i & 7))
        if on and start is None: start = i
        if not on and start is not None: out.append([start, i - 1]); start = None
    if start is not None: out.append([start, len(bm) * 8 - 1])
    return out
rep = {k.decode(): {'received': v[1], 'duplicates': v[2], 'seen': ranges(v[0])} for k, v in senders.items()}
print(json.dumps({'senders': rep, 'rejoins': rejoins, 'other': other}), flush=True)
`;

export interface StreamOptions {
  readonly senders: readonly LabPod[];
  readonly receivers: readonly LabPod[];
  /** Datagrams per second per sender. */
  readonly rate: number;
  readonly durationMs: number;
  readonly group?: string;
  readonly port?: number;
  /** UDP payload bytes, default 64. */
  readonly size?: number;
  /** Re-join period of the receivers in ms (0: never), default 0. */
  readonly rejoinMs?: number;
  /** Delay from "everyone ready" to sequence number 0, default 500 ms (joins reach the senders). */
  readonly startDelayMs?: number;
  /**
   * Awaited once every receiver has joined, before the start time is set: e.g. until the senders
   * replicate the group to every receiver, so that a loaded machine's slower join path does not
   * count as loss at the start.
   */
  readonly beforeSend?: (group: string) => Promise<void>;
}

export interface StreamResult {
  readonly senders: SenderReport[];
  readonly receivers: Map<string, ReceiverReport>;
}

interface Proc {
  readonly pod: LabPod;
  readonly child: ChildProcess;
  out: string;
  err: string;
}

function spawnPy(pod: LabPod, script: string, args: readonly string[]): Proc {
  const child = spawnInNetns(pod.netns, [findPython(), '-c', script, ...args], { stdin: 'pipe' });
  const p: Proc = { pod, child, out: '', err: '' };
  child.stdout?.on('data', (b: Buffer) => (p.out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (p.err += b.toString()));
  child.stdin?.on('error', () => undefined);
  return p;
}

async function untilReady(p: Proc, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!p.out.includes('READY\n')) {
    if (p.child.exitCode !== null || p.child.signalCode !== null || Date.now() > deadline) {
      throw new KmcastError(`start ${what} in pod ${p.pod.name}: ${p.err.trim() || 'not ready after 10 s'}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

function lastJson<T>(p: Proc, what: string): T {
  const line = p.out
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (line === undefined) throw new KmcastError(`read the ${what} report of pod ${p.pod.name}: none printed${p.err.trim() ? `\n${p.err.trim()}` : ''}`);
  return JSON.parse(line) as T;
}

/** A running stream: `t0` is when sequence number 0 is due; `finish` waits for the senders and collects. */
export interface Stream {
  readonly t0: number;
  readonly endsAt: number;
  finish(): Promise<StreamResult>;
  /** Kills every process of the stream (cleanup after a failure). */
  kill(): void;
}

/** Starts receivers, waits until they joined, then starts the senders on a common schedule. */
export async function startStream(o: StreamOptions): Promise<Stream> {
  const group = o.group ?? '239.7.7.7';
  const port = String(o.port ?? 7600);
  const nonce = randomBytes(4).toString('hex');
  const count = Math.round((o.rate * o.durationMs) / 1000);
  const maxS = String(o.durationMs / 1000 + 120);
  const procs: Proc[] = [];
  const kill = (): void => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  };
  try {
    const receivers = o.receivers.map((pod) => spawnPy(pod, RECEIVER_PY, [port, group, nonce, String(o.rejoinMs ?? 0), maxS]));
    procs.push(...receivers);
    await Promise.all(receivers.map((r) => untilReady(r, 'stream receiver')));
    await o.beforeSend?.(group);
    const t0 = Date.now() + (o.startDelayMs ?? 500);
    const senders = o.senders.map((pod) => spawnPy(pod, SENDER_PY, [group, port, nonce, pod.name, String(o.rate), String(count), String(t0), String(o.size ?? 64)]));
    procs.push(...senders);
    await Promise.all(senders.map((s) => untilReady(s, 'stream sender')));
    return {
      t0,
      endsAt: t0 + o.durationMs,
      kill,
      async finish(): Promise<StreamResult> {
        try {
          const lateMs = Math.max(0, t0 + o.durationMs - Date.now()) + 60_000;
          await Promise.all(senders.map((s) => waitExit(s.child, lateMs)));
          await new Promise((r) => setTimeout(r, 500)); // in-flight datagrams
          for (const r of receivers) r.child.stdin?.end();
          await Promise.all(receivers.map((r) => waitExit(r.child, 10_000)));
          return {
            senders: senders.map((s) => lastJson<SenderReport>(s, 'sender')),
            receivers: new Map(receivers.map((r) => [r.pod.name, lastJson<ReceiverReport>(r, 'receiver')])),
          };
        } finally {
          kill();
        }
      },
    };
  } catch (err) {
    kill();
    throw err;
  }
}
