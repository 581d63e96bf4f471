/**
 * Apps as node mode promises to serve them: python3 sockets in a pod, run with no capability and
 * a non-root uid (setpriv), joined on eth0 BY INTERFACE INDEX, sending with IP_MULTICAST_IF set
 * to eth0's index, optionally bound with SO_BINDTODEVICE eth0. The same apps run in any lab
 * namespace on a named interface (a node's or a LAN host's), e.g. joined by address on kmclan.
 * They are spawned through the lab's process helpers (`ip netns exec`), so labDown finds and
 * kills them.
 */
import type { ChildProcess } from 'node:child_process';
import { KmcastError } from '../errors.js';
import { findPython, runInNetns, scaled, spawnInNetns, waitExit, waitFor } from './process.js';

/** No capability, uid/gid 65534 (nobody), no supplementary groups. */
export const UNPRIVILEGED: readonly string[] = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--'];

// argv: port groups(comma) mode(index|addr|bind|all|none) maxSeconds [ifname, default eth0]
// index: join each group on ifname by index; addr: by ifname's IPv4 address (ip_mreq, as many
// apps do); bind: by index and SO_BINDTODEVICE ifname; all: join on every interface of the
// namespace (a listener in a node namespace that must hear nothing); none: join nothing (a socket
// that only hears what another socket of the namespace joined).
// Counts datagrams by (destination, source) with IP_PKTINFO, and the TTLs seen (IP_RECVTTL),
// until stdin closes; prints READY first and a JSON report last.
export const NODE_RECEIVER_PY = `
import json, os, select, socket, struct, sys, time
import fcntl
port, groups, mode, maxs = int(sys.argv[1]), [g for g in sys.argv[2].split(',') if g], sys.argv[3], float(sys.argv[4])
ifname = sys.argv[5] if len(sys.argv) > 5 else 'eth0'
IP_PKTINFO = getattr(socket, 'IP_PKTINFO', 8); IP_RECVTTL = getattr(socket, 'IP_RECVTTL', 12); IP_TTL = getattr(socket, 'IP_TTL', 2)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if mode == 'bind': s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
s.bind(('0.0.0.0', port))
ifaces = [i for i, n in socket.if_nameindex() if n != 'lo'] if mode == 'all' else [] if mode == 'none' else [socket.if_nametoindex(ifname)]
for g in groups:
    if mode == 'addr':
        local = fcntl.ioctl(s.fileno(), 0x8915, struct.pack('256s', ifname.encode()[:15]))[20:24]  # SIOCGIFADDR
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4s', socket.inet_aton(g), local))
        continue
    for idx in ifaces:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4si', socket.inet_aton(g), socket.inet_aton('0.0.0.0'), idx))
counts, ttls = {}, {}
def take():
    data, anc, flags, addr = s.recvmsg(65535, 256)
    dst, ttl = '?', None
    for level, typ, d in anc:
        if level == socket.IPPROTO_IP and typ == IP_PKTINFO: dst = socket.inet_ntoa(d[8:12])
        elif level == socket.IPPROTO_IP and typ == IP_TTL: ttl = struct.unpack('i', d[:4])[0]
    c = counts.setdefault(dst, {})
    c[addr[0]] = c.get(addr[0], 0) + 1
    t = ttls.setdefault(dst, [])
    if ttl not in t: t.append(ttl)
total, shown, shown_at = 0, 0, 0.0
def show(force=False):
    global shown, shown_at
    now = time.monotonic()
    if total != shown and (force or now - shown_at >= 0.02):
        print('C %d' % total, flush=True); shown, shown_at = total, now
print('READY', flush=True)
end, fd, done = time.monotonic() + maxs, sys.stdin.fileno(), False
while not done:
    left = end - time.monotonic()
    if left <= 0: break
    r, _, _ = select.select([s, fd], [], [], min(left, 0.05))
    if s in r: take(); total += 1
    if fd in r and not os.read(fd, 4096): done = True
    show()
s.setblocking(False)
while True:
    try: take()
    except BlockingIOError: break
print(json.dumps({'counts': counts, 'ttls': ttls}), flush=True)
`;

// argv: dst port count intervalMs [ifname, default eth0] [size: payload padded to size bytes, default unpadded]. Multicast: IP_MULTICAST_IF = ifname's
// index (ip_mreqn). Limited broadcast: SO_BROADCAST and SO_BINDTODEVICE ifname (unprivileged
// since Linux 5.7).
export const NODE_SENDER_PY = `
import socket, struct, sys, time
dst, port, count, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) / 1000
ifname = sys.argv[5] if len(sys.argv) > 5 else 'eth0'
size = int(sys.argv[6]) if len(sys.argv) > 6 else 0
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if dst == '255.255.255.255':
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
else:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack('4s4si', socket.inet_aton('0.0.0.0'), socket.inet_aton('0.0.0.0'), idx))
for i in range(count):
    s.sendto((b'kmcast-node %d ' % i).ljust(size, b'x'), (dst, port))
    time.sleep(interval)
print(count, flush=True)
`;

export interface NodeReceiverReport {
  /** counts[destination][source] */
  readonly counts: Record<string, Record<string, number>>;
  readonly ttls: Record<string, Array<number | null>>;
}

export interface NodeReceiver {
  readonly netns: string;
  /** Datagrams counted so far (any group, any source), as the receiver last printed. */
  total(): number;
  /** Waits until total() >= n (deadline scaled); the error says how many arrived. */
  waitTotal(n: number, timeoutMs?: number): Promise<void>;
  /** Closes its stdin, waits for the report. */
  stop(): Promise<NodeReceiverReport>;
}

export type ReceiverMode = 'index' | 'addr' | 'bind' | 'all' | 'none';

/**
 * Starts an unprivileged receiver in any namespace (a pod, a node, a LAN host), joined on
 * `ifname` (default eth0) as `mode` says (node namespaces that must hear nothing: `mode: 'all'`).
 */
export async function startNodeReceiver(
  netns: string,
  opts: { port: number; groups: readonly string[]; mode?: ReceiverMode; maxSeconds?: number; ifname?: string },
): Promise<NodeReceiver> {
  const argv = [
    ...UNPRIVILEGED,
    findPython(),
    '-c',
    NODE_RECEIVER_PY,
    String(opts.port),
    opts.groups.join(','),
    opts.mode ?? 'index',
    String(opts.maxSeconds ?? 60),
    opts.ifname ?? 'eth0',
  ];
  const child: ChildProcess = spawnInNetns(netns, argv, { stdin: 'pipe' });
  let out = '';
  let err = '';
  let counted = 0;
  child.stdout?.on('data', (b: Buffer) => {
    const from = out.lastIndexOf('\n') + 1;
    out += b.toString();
    for (const m of out.slice(from).matchAll(/^C (\d+)$/gm)) counted = Math.max(counted, Number(m[1]));
  });
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const deadline = Date.now() + scaled(10_000);
  while (!out.includes('READY')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new KmcastError(`start receiver in ${netns}: ${err.trim() || 'no READY'}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const total = (): number => counted;
  return {
    netns,
    total,
    async waitTotal(n: number, timeoutMs = 5000): Promise<void> {
      await waitFor(`${n} datagrams at the receiver in ${netns}`, async () => total() >= n, timeoutMs, { intervalMs: 20, explain: () => `${total()} arrived` });
    },
    async stop(): Promise<NodeReceiverReport> {
      child.stdin?.end();
      await waitExit(child, 5000);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        return JSON.parse(line) as NodeReceiverReport;
      } catch {
        throw new KmcastError(`receiver in ${netns} gave no report (exit ${String(child.exitCode ?? child.signalCode)}): ${err.trim() || out.slice(-500)}`);
      }
    },
  };
}

/** Sends `count` datagrams from any namespace via `ifname` (default eth0), unprivileged; resolves when sent. */
export async function sendFromPod(netns: string, dst: string, opts: { port: number; count: number; intervalMs?: number; ifname?: string; size?: number }): Promise<void> {
  const argv = [...UNPRIVILEGED, findPython(), '-c', NODE_SENDER_PY, dst, String(opts.port), String(opts.count), String(opts.intervalMs ?? 10), opts.ifname ?? 'eth0', String(opts.size ?? 0)];
  const r = await runInNetns(netns, argv, 30_000);
  if (r.code !== 0) throw new KmcastError(`send to ${dst} from ${netns}: ${r.stderr.trim() || `exit ${String(r.code)}`}`);
}

/** Datagrams a report holds for `dst` from `src` (0 when none). */
export function received(report: NodeReceiverReport, dst: string, src: string): number {
  return report.counts[dst]?.[src] ?? 0;
}

/** Every datagram a report holds for `dst`, from anyone. */
export function receivedAny(report: NodeReceiverReport, dst: string): number {
  return Object.values(report.counts[dst] ?? {}).reduce((a, b) => a + b, 0);
}
