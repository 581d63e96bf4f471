/**
 * IPv6 traffic between lab pods, with python3's socket module (real socket calls an application
 * makes, nothing of kmcast's): a multicast receiver that joins groups on an interface by index
 * (IPV6_JOIN_GROUP) and reports every datagram with its source and destination group, a sender
 * that picks its interface with IPV6_MULTICAST_IF, and a TCP exchange. Every process has a hard
 * deadline, so a lost datagram or a hung connection never hangs a test.
 */
import type { ChildProcess } from 'node:child_process';
import { KmcastError } from '../errors.js';
import type { LabPod } from './types.js';
import { findPython, runInNetns, scaled, spawnInNetns, waitExit, waitFor } from './process.js';
import { PY_SERVE_LOOP } from './traffic.js';

/** A site-scoped group (ff05::/16 is routable beyond the link, like 239/8) and mDNS's link-local one. */
export const DEFAULT_GROUP6 = 'ff05::1:3';
export const DEFAULT_LINKLOCAL_GROUP6 = 'ff02::fb';
export const DEFAULT_TRAFFIC6_PORT = 7506;
/** A receiver never outlives this, even if we die before telling it to stop. */
const RECEIVER_MAX_S = 60;

// argv: port ifname maxs group...; binds [::]:port (SO_REUSEADDR), joins every group on ifname by
// index (struct ipv6_mreq), asks for IPV6_PKTINFO to learn each datagram's destination, prints
// READY, then one JSON line per datagram as it arrives, until stdin closes; drains, prints END.
export const RECEIVER6_PY = `
import json, os, select, socket, struct, sys, time
port, ifname, maxs, groups = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4:]
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
s.bind(('::', port))
for g in groups:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.inet_pton(socket.AF_INET6, g) + struct.pack('@I', idx))
def take():
    data, anc, _, addr = s.recvmsg(65535, 256)
    dst = ''
    for level, kind, d in anc:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO: dst = socket.inet_ntop(socket.AF_INET6, d[:16])
    print(json.dumps({'src': addr[0].split('%')[0], 'dst': dst, 'data': data.decode('utf-8', 'replace')}), flush=True)
${PY_SERVE_LOOP}print('END', flush=True)
`;

// argv: group port ifname hops count payload; sends `count` datagrams out of ifname (by index),
// or, with an empty ifname, out of whatever device the route to the group names.
export const SENDER6_PY = `
import socket, struct, sys
group, port, ifname, hops, count, payload, probe = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7] == '1'
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
# IPV6_MTU_DISCOVER (23) = IPV6_PMTUDISC_OMIT (5): fragment at the device MTU, not the route MTU.
if probe: s.setsockopt(socket.IPPROTO_IPV6, 23, 5)
if ifname: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(ifname))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
for i in range(count): s.sendto(payload.encode(), (group, port))
`;

/** One datagram a receiver got: source address (no zone), destination group, payload. */
export interface Datagram6 {
  readonly src: string;
  readonly dst: string;
  readonly data: string;
}

export interface Mcast6Receiver {
  readonly pod: Pick<LabPod, 'name' | 'netns'>;
  /** What arrived so far, in arrival order. */
  received(): Datagram6[];
  /** Waits (deadline `timeoutMs`, scaled) until `pred` holds for what arrived; returns it. */
  waitUntil(what: string, pred: (got: Datagram6[]) => boolean, timeoutMs?: number): Promise<Datagram6[]>;
  /** Stops the receiver and returns everything it got. */
  stop(): Promise<Datagram6[]>;
}

/** What `r` got of the datagrams whose payload starts with `tag`; payloads over 100 characters cut to 40 and their length, for messages. */
export function receivedTagged(r: Mcast6Receiver, tag: string): Datagram6[] {
  return r
    .received()
    .filter((d) => d.data.startsWith(tag))
    .map((d) => ({ ...d, data: d.data.length > 100 ? `${d.data.slice(0, 40)}... (${d.data.length})` : d.data }));
}

export interface Mcast6ReceiverOptions {
  /** Default [DEFAULT_GROUP6, DEFAULT_LINKLOCAL_GROUP6]. */
  readonly groups?: readonly string[];
  readonly port?: number;
  /** The interface joined by index, default eth0. */
  readonly ifname?: string;
  /** A prefix the receiver runs under, e.g. UNPRIVILEGED (node-apps.ts) as node mode's apps run. */
  readonly as?: readonly string[];
  /** Readiness deadline, ms (scaled), default 10 000. */
  readonly readyMs?: number;
}

/**
 * Starts a receiver in `pod` (or any lab namespace: a node's, with ifname its uplink) that has
 * joined every group once this resolves.
 */
export async function startMcast6Receiver(pod: Pick<LabPod, 'name' | 'netns'>, opts: Mcast6ReceiverOptions = {}): Promise<Mcast6Receiver> {
  const groups = opts.groups ?? [DEFAULT_GROUP6, DEFAULT_LINKLOCAL_GROUP6];
  const argv = [...(opts.as ?? []), findPython(), '-c', RECEIVER6_PY, String(opts.port ?? DEFAULT_TRAFFIC6_PORT), opts.ifname ?? 'eth0', String(RECEIVER_MAX_S), ...groups];
  const child = spawnInNetns(pod.netns, argv, { stdin: 'pipe' });
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  child.stdin?.on('error', () => undefined);
  child.on('error', (e) => (err += `${e.message}\n`));
  try {
    await untilReady(child, () => out, () => err, pod, scaled(opts.readyMs ?? 10_000));
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const received = (): Datagram6[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Datagram6);
  return {
    pod,
    received,
    async waitUntil(what: string, pred: (got: Datagram6[]) => boolean, timeoutMs = 10_000): Promise<Datagram6[]> {
      return await waitFor(`${what} (receiver in ${pod.name})`, async () => (pred(received()) ? received() : undefined), timeoutMs, {
        intervalMs: 20,
        explain: () => `got ${JSON.stringify(received())}${err.trim() ? `; stderr: ${err.trim()}` : ''}`,
      });
    },
    async stop(): Promise<Datagram6[]> {
      child.stdin?.end();
      await waitExit(child, 5000);
      if (!out.includes('END\n')) throw new KmcastError(`stop the IPv6 multicast receiver in pod ${pod.name}: it did not finish its report${err.trim() ? `\n${err.trim()}` : ''}`);
      return received();
    },
  };
}

async function untilReady(child: ChildProcess, out: () => string, err: () => string, pod: Pick<LabPod, 'name'>, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      reject(new KmcastError(`start the IPv6 multicast receiver in pod ${pod.name}: ${why}${err().trim() ? `\n${err().trim()}` : ''}`));
    };
    const timer = setTimeout(() => fail(`not ready after ${timeoutMs} ms`), timeoutMs);
    const check = (): void => {
      if (out().includes('READY\n')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => fail(`exited with code ${String(code)}`));
    check();
  });
}

export interface Mcast6SendOptions {
  readonly port?: number;
  /** The interface sent out of (IPV6_MULTICAST_IF), default eth0; '' names none (the route decides). */
  readonly ifname?: string;
  /** IPV6_MULTICAST_HOPS, default 4 (1 is the link-local convention; the router must drop either way). */
  readonly hops?: number;
  /** Datagrams to send, default 1. */
  readonly count?: number;
  readonly as?: readonly string[];
  /** IPV6_PMTUDISC_OMIT: the kernel fragments at the device's MTU and ignores the route's (as some apps ask). */
  readonly deviceMtu?: boolean;
}

/** Sends `payload` to `group` from `pod`; resolves once the datagrams left the socket. */
export async function sendMcast6(pod: Pick<LabPod, 'name' | 'netns'>, group: string, payload: string, opts: Mcast6SendOptions = {}): Promise<void> {
  const argv = [
    ...(opts.as ?? []),
    findPython(),
    '-c',
    SENDER6_PY,
    group,
    String(opts.port ?? DEFAULT_TRAFFIC6_PORT),
    opts.ifname ?? 'eth0',
    String(opts.hops ?? 4),
    String(opts.count ?? 1),
    payload,
    opts.deviceMtu ? '1' : '0',
  ];
  const r = await runInNetns(pod.netns, argv, scaled(10_000));
  if (r.code !== 0) throw new KmcastError(`send to ${group} from pod ${pod.name}: ${r.stderr.trim() || `exit code ${String(r.code)}`}`);
}

// argv: port timeout; accepts one connection on [::]:port, reads to EOF, answers
// "<bytes> <peer address>" and exits. Prints LISTENING first.
const TCP_SERVER_PY = `
import socket, sys
port, timeout = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::', port)); s.listen(1); s.settimeout(timeout)
print('LISTENING', flush=True)
c, addr = s.accept(); c.settimeout(timeout)
n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
c.sendall(('%d %s' % (n, addr[0])).encode()); c.close()
`;

// argv: host port bytes timeout; connects, sends `bytes` bytes, half-closes, prints the answer.
const TCP_CLIENT_PY = `
import socket, sys
host, port, n, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = socket.create_connection((host, port), timeout=timeout)
c.sendall(b'k' * n); c.shutdown(socket.SHUT_WR)
out = b''
while True:
    b = c.recv(65536)
    if not b: break
    out += b
print(out.decode())
`;

/**
 * A TCP connection from `from` to `to` at `address` (e.g. to.ip6): `bytes` bytes one way, the
 * server's count and the client address it saw the other way. Works for IPv4 addresses too (the
 * server's IPv6 socket is dual-stack).
 */
export async function tcpExchange(from: Pick<LabPod, 'name' | 'netns'>, to: Pick<LabPod, 'name' | 'netns'>, address: string, opts: { port?: number; bytes?: number; timeoutMs?: number } = {}): Promise<{ bytes: number; peer: string }> {
  const port = String(opts.port ?? 7507);
  const bytes = opts.bytes ?? 100_000;
  const timeoutS = String(scaled(opts.timeoutMs ?? 10_000) / 1000);
  const server = spawnInNetns(to.netns, [findPython(), '-c', TCP_SERVER_PY, port, timeoutS]);
  let out = '';
  let err = '';
  server.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  server.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new KmcastError(`start a TCP server in pod ${to.name}: not listening after ${timeoutS} s ${err.trim()}`)), scaled(opts.timeoutMs ?? 10_000));
      const check = (): void => {
        if (out.includes('LISTENING')) {
          clearTimeout(timer);
          resolve();
        }
      };
      server.stdout?.on('data', check);
      server.once('exit', (code) => {
        clearTimeout(timer);
        reject(new KmcastError(`TCP server in pod ${to.name} exited with code ${String(code)}: ${err.trim()}`));
      });
      check();
    });
    const r = await runInNetns(from.netns, [findPython(), '-c', TCP_CLIENT_PY, address, port, String(bytes), timeoutS], scaled(opts.timeoutMs ?? 10_000) + 2000);
    if (r.code !== 0) throw new KmcastError(`TCP from pod ${from.name} to [${address}]:${port}: ${r.stderr.trim() || `exit code ${String(r.code)}`}`);
    const [n, peer] = r.stdout.trim().split(' ');
    return { bytes: Number(n), peer: peer ?? '' };
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  }
}
