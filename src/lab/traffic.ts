/**
 * Who hears whom: every pod sends multicast, link-local multicast and limited broadcast, every pod
 * counts what it receives. The receiver is python3's socket module and the sender is socat, real
 * socket programs nobody here wrote, so the matrix shows what an application would see.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { KmcastError } from '../errors.js';
import { IpClient } from '../kernel/ip.js';
import { ExecRunner } from '../kernel/runner.js';
import type { Lab, LabPod } from './types.js';
import { UNPRIVILEGED } from './node-apps.js';
import { findPython, findTool, runInNetns, scaled, settle, spawnInNetns, waitExit, waitFor } from './process.js';

export type TrafficKind = 'multicast' | 'linklocal' | 'broadcast' | 'multicast6' | 'linklocal6';
export const TRAFFIC_KINDS: readonly TrafficKind[] = ['multicast', 'linklocal', 'broadcast'];
/** The IPv6 kinds (a dual-stack lab): to ff05::1:3 and to ff02::fb (mDNS's), joined and sent on eth0 by index. */
export const TRAFFIC_KINDS6: readonly TrafficKind[] = ['multicast6', 'linklocal6'];
const isV6 = (k: TrafficKind): boolean => k === 'multicast6' || k === 'linklocal6';

export interface Matrix {
  readonly kinds: readonly TrafficKind[];
  readonly pods: readonly string[];
  /** Datagrams each sender sent per kind. */
  readonly sent: number;
  /** counts[kind][sender][receiver] = datagrams received */
  readonly counts: Record<TrafficKind, Record<string, Record<string, number>>>;
}

export interface TrafficOptions {
  readonly pods?: readonly LabPod[];
  /** Routable group, default 239.1.1.1. */
  readonly group?: string;
  /** Link-local group, default 224.0.0.251 (mDNS's). */
  readonly linkLocalGroup?: string;
  /** UDP port, default 7500 (clear of kmcast's own 7470/7471/9470). */
  readonly port?: number;
  /** Datagrams per sender per kind, default 3. */
  readonly count?: number;
  readonly kinds?: readonly TrafficKind[];
  /**
   * Pause between "every receiver joined" and the first send (default 0). With kmcast a join
   * reaches the senders' replication entries in tens of milliseconds, like an IGMP report
   * reaching a snooping switch; a matrix that checks exact counts waits that out.
   */
  readonly settleMs?: number;
  /**
   * With kmcast agents running: once the receivers joined, wait (up to this many ms) until every
   * pod's vx0 replicates the group to every other pod, instead of guessing a settle time. Pods
   * without vx0 (the baseline) are not waited for.
   */
  readonly awaitJoinsMs?: number;
  /**
   * How awaitJoinsMs decides every receiver's join is replicated (default: groupRegistered, the
   * pods' vx0). Node mode has no vx0 in the pods: its caller checks the node devices instead.
   */
  readonly joined?: (group: string) => Promise<boolean>;
  /** What to quote when awaitJoinsMs runs out (default: the pods' missing vx0 MDB entries). */
  readonly explainJoins?: (group: string) => Promise<string>;
  /**
   * 'root' (default): receivers join with no interface named, as apps do under the sidecar.
   * 'unprivileged': the apps node mode serves: uid 65534 and no capability (receivers and
   * senders), receivers joined on eth0 by interface index.
   */
  readonly apps?: 'root' | 'unprivileged';
}

/** For each pod that has vx0, the other pods its vx0 does not replicate `group` to ("p1 -> p2, p3"). */
export async function groupReplicationGaps(pods: readonly LabPod[], group: string): Promise<string[]> {
  const runner = new ExecRunner();
  const gaps: string[] = [];
  for (const p of pods) {
    const ip = new IpClient(runner, p.netns);
    if (!(await ip.link('vx0'))) continue;
    const dsts = new Set((await ip.bridge.mdb('vx0')).filter((e) => e.grp === group).map((e) => e.dst));
    const missing = pods.filter((q) => q !== p && !dsts.has(q.ip)).map((q) => q.name);
    if (missing.length > 0) gaps.push(`${p.name} does not replicate ${group} to ${missing.join(', ')}`);
  }
  return gaps;
}

/** True when every pod that has vx0 holds an MDB entry for `group` towards every other pod. */
export async function groupRegistered(pods: readonly LabPod[], group: string): Promise<boolean> {
  return (await groupReplicationGaps(pods, group)).length === 0;
}

export const DEFAULT_GROUP = '239.1.1.1';
export const DEFAULT_LINKLOCAL_GROUP = '224.0.0.251';
export const DEFAULT_TRAFFIC_PORT = 7500;
/** After the last send: time for in-flight datagrams to arrive before receivers report. */
const SETTLE_MS = 300;
/** A receiver never outlives this, even if we die before telling it to stop. */
const RECEIVER_MAX_S = 60;

/**
 * The receivers' main loop (python3, after the socket `s`, `take()` and `maxs` exist): prints
 * READY, takes datagrams until stdin closes or `maxs` seconds pass, then drains what is queued.
 */
export const PY_SERVE_LOOP = `
print('READY', flush=True)
end, fd, done = time.monotonic() + maxs, sys.stdin.fileno(), False
while not done:
    left = end - time.monotonic()
    if left <= 0: break
    r, _, _ = select.select([s, fd], [], [], left)
    if s in r: take()
    if fd in r and not os.read(fd, 4096): done = True
s.setblocking(False)
while True:
    try: take()
    except BlockingIOError: break
`;

// Binds 0.0.0.0:port with SO_REUSEADDR, joins both groups with no interface named (the kernel
// picks the interface of the group's route: eth0 at baseline, vx0 once kmcast routes 224.0.0.0/4),
// or, with a 6th argument, on that interface by index (ip_mreqn),
// prints READY, counts (kind, source address) until stdin closes, drains, prints JSON.
export const RECEIVER_PY = `
import json, os, select, socket, struct, sys, time
port, group, llgroup, nonce, maxs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
ifname = sys.argv[6] if len(sys.argv) > 6 else ''
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', port))
for g in (group, llgroup):
    if ifname: mreq = struct.pack('4s4si', socket.inet_aton(g), socket.inet_aton('0.0.0.0'), socket.if_nametoindex(ifname))
    else: mreq = struct.pack('4s4s', socket.inet_aton(g), socket.inet_aton('0.0.0.0'))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
counts, other = {}, 0
def take():
    global other
    data, addr = s.recvfrom(65535)
    p = data.decode('ascii', 'replace').split()
    if len(p) == 5 and p[0] == 'kmcast-matrix' and p[1] == nonce:
        k = counts.setdefault(p[2], {})
        k[addr[0]] = k.get(addr[0], 0) + 1
    else:
        other += 1
${PY_SERVE_LOOP}print(json.dumps({'counts': counts, 'other': other}), flush=True)
`;

// The IPv6 receiver: binds [::]:port, joins ff05::1:3 and ff02::fb on eth0 by index (an IPv6
// link-local group needs an interface), counts (kind, sender pod name from the payload: a
// link-local group's source is the sender's fe80:: address) and checks each source is the
// sender's IPv6 address or a link-local one. argv: port group llgroup nonce maxs ifname ip6-of-pods-json.
export const RECEIVER6_PY = `
import json, os, select, socket, struct, sys, time
port, group, llgroup, nonce, maxs, ifname, ip6 = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6], json.loads(sys.argv[7])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::', port))
idx = socket.if_nametoindex(ifname)
for g in (group, llgroup):
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.inet_pton(socket.AF_INET6, g) + struct.pack('@I', idx))
counts, other = {}, 0
def take():
    global other
    data, addr = s.recvfrom(65535)
    p = data.decode('ascii', 'replace').split()
    src = addr[0].split('%')[0]
    if len(p) == 5 and p[0] == 'kmcast-matrix' and p[1] == nonce and (src == ip6.get(p[3]) or src.startswith('fe80:')):
        k = counts.setdefault(p[2], {})
        k[p[3]] = k.get(p[3], 0) + 1
    else:
        other += 1
${PY_SERVE_LOOP}print(json.dumps({'counts': counts, 'other': other}), flush=True)
`;

// The IPv6 sender: one datagram from stdin to a group, out of ifname (IPV6_MULTICAST_IF by index). argv: group port ifname hops.
export const SENDER6_MATRIX_PY = `
import socket, sys
group, port, ifname, hops = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(ifname))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
s.sendto(sys.stdin.buffer.read(), (group, port))
`;

export const DEFAULT_GROUP6_MATRIX = 'ff05::1:3';
export const DEFAULT_LINKLOCAL_GROUP6_MATRIX = 'ff02::fb';

/** One receiver's report: counts[kind][source IP] (IPv6 kinds: [sender pod name]). */
export interface ReceiverReport {
  readonly counts: Partial<Record<string, Record<string, number>>>;
  readonly other: number;
}

/** Builds the matrix from each receiver's report (keyed by receiver pod name). Pure. */
export function buildMatrix(
  kinds: readonly TrafficKind[],
  pods: readonly Pick<LabPod, 'name' | 'ip'>[],
  sent: number,
  reports: ReadonlyMap<string, ReceiverReport>,
): Matrix {
  const byIp = new Map(pods.map((p) => [p.ip, p.name]));
  for (const p of pods) byIp.set(p.name, p.name); // IPv6 reports count by sender name
  const counts = {} as Record<TrafficKind, Record<string, Record<string, number>>>;
  for (const kind of kinds) {
    const rows: Record<string, Record<string, number>> = {};
    for (const from of pods) {
      rows[from.name] = Object.fromEntries(pods.map((to) => [to.name, 0]));
    }
    for (const to of pods) {
      for (const [ip, n] of Object.entries(reports.get(to.name)?.counts[kind] ?? {})) {
        const from = byIp.get(ip);
        const row = from === undefined ? undefined : rows[from];
        if (row) row[to.name] = (row[to.name] ?? 0) + n;
      }
    }
    counts[kind] = rows;
  }
  return { kinds: [...kinds], pods: pods.map((p) => p.name), sent, counts };
}

/** Off-diagonal cells of one kind (the diagonal is the sender's own loopback copy). */
export function matrixCells(m: Matrix, kind: TrafficKind): { from: string; to: string; count: number }[] {
  const out: { from: string; to: string; count: number }[] = [];
  for (const from of m.pods) {
    for (const to of m.pods) if (from !== to) out.push({ from, to, count: m.counts[kind][from]?.[to] ?? 0 });
  }
  return out;
}

/** A human table: one row per sender, one column per receiver, '-' on the diagonal. */
export function formatMatrix(m: Matrix, kind: TrafficKind): string {
  const corner = 'from \\ to';
  const w = Math.max(corner.length, ...m.pods.map((p) => p.length));
  const cw = Math.max(4, ...m.pods.map((p) => p.length));
  const lines = [
    `${kind}: datagrams received (rows: sender, columns: receiver; ${m.sent} sent by each sender)`,
    `${corner.padEnd(w)}  ${m.pods.map((p) => p.padStart(cw)).join('  ')}`,
  ];
  for (const from of m.pods) {
    const cells = m.pods.map((to) => (from === to ? '-' : String(m.counts[kind][from]?.[to] ?? 0)).padStart(cw));
    lines.push(`${from.padEnd(w)}  ${cells.join('  ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** socat's destination address for one kind. Pure; exported for tests. */
export function socatAddress(kind: TrafficKind, o: { group: string; linkLocalGroup: string; port: number }): string {
  switch (kind) {
    case 'multicast':
      return `UDP4-DATAGRAM:${o.group}:${o.port},ip-multicast-ttl=4`;
    case 'linklocal':
      return `UDP4-DATAGRAM:${o.linkLocalGroup}:${o.port},ip-multicast-ttl=1`;
    case 'broadcast':
      return `UDP4-DATAGRAM:255.255.255.255:${o.port},broadcast`;
    case 'multicast6':
    case 'linklocal6':
      // socat cannot pick an IPv6 multicast interface: these kinds go out through SENDER6_MATRIX_PY.
      throw new KmcastError(`socat sends no ${kind}: IPv6 kinds are sent with python3`);
  }
}

interface Receiver {
  readonly pod: LabPod;
  readonly child: ChildProcess;
  out: string;
  err: string;
}

async function ready(r: Receiver, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      reject(new KmcastError(`start receiver in pod ${r.pod.name}: ${why}${r.err.trim() ? `\n${r.err.trim()}` : ''}`));
    };
    const timer = setTimeout(() => fail(`not ready after ${timeoutMs} ms`), timeoutMs);
    const check = (): void => {
      if (r.out.includes('READY\n')) {
        clearTimeout(timer);
        resolve();
      }
    };
    r.child.stdout?.on('data', check);
    r.child.once('exit', (code) => fail(`exited with code ${String(code)}`));
    check();
  });
}

/** Sends and counts every kind between the pods (default: all of the lab's); ~1-2 s. */
export async function trafficMatrix(lab: Lab, opts: TrafficOptions = {}): Promise<Matrix> {
  const python = findPython();
  const socat = findTool('socat', 'socat (e.g. apt-get install socat)');
  const pods = opts.pods ?? lab.pods;
  const kinds = opts.kinds ?? TRAFFIC_KINDS;
  const count = opts.count ?? 3;
  const o = { group: opts.group ?? DEFAULT_GROUP, linkLocalGroup: opts.linkLocalGroup ?? DEFAULT_LINKLOCAL_GROUP, port: opts.port ?? DEFAULT_TRAFFIC_PORT };
  // A fresh token per run, so a late datagram of an earlier run is never counted in this one.
  const nonce = randomBytes(4).toString('hex');
  const unpriv = opts.apps === 'unprivileged';
  const as = unpriv ? UNPRIVILEGED : [];

  const v6 = kinds.some(isV6);
  if (v6 && pods.some((p) => p.ip6 === undefined)) throw new KmcastError('IPv6 traffic needs a dual-stack lab (lab up --ipv6): some pods have no IPv6 address');
  const ip6 = JSON.stringify(Object.fromEntries(pods.map((p) => [p.name, p.ip6])));
  const spawnReceiver = (pod: LabPod, six: boolean): Receiver => {
    const argv = six
      ? [...as, python, '-c', RECEIVER6_PY, String(o.port), DEFAULT_GROUP6_MATRIX, DEFAULT_LINKLOCAL_GROUP6_MATRIX, nonce, String(RECEIVER_MAX_S), 'eth0', ip6]
      : [...as, python, '-c', RECEIVER_PY, String(o.port), o.group, o.linkLocalGroup, nonce, String(RECEIVER_MAX_S), ...(unpriv ? ['eth0'] : [])];
    const child = spawnInNetns(pod.netns, argv, { stdin: 'pipe' });
    const r: Receiver = { pod, child, out: '', err: '' };
    child.stdout?.on('data', (b: Buffer) => (r.out += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (r.err += b.toString()));
    child.stdin?.on('error', () => undefined);
    // A spawn failure (no `ip`) must not crash the process: it shows up as a receiver that never got ready.
    child.on('error', (e) => (r.err += `${e.message}\n`));
    return r;
  };
  const receivers: Receiver[] = pods.map((pod) => spawnReceiver(pod, false));
  const receivers6: Receiver[] = v6 ? pods.map((pod) => spawnReceiver(pod, true)) : [];
  try {
    await Promise.all([...receivers, ...receivers6].map((r) => ready(r, scaled(10_000))));
    const routable = [...(kinds.includes('multicast') ? [o.group] : []), ...(kinds.includes('multicast6') ? [DEFAULT_GROUP6_MATRIX] : [])];
    if (opts.awaitJoinsMs) {
      // Sending before the joins are replicated would only measure the wait: fail with what is missing.
      const joined = opts.joined ?? ((g: string) => groupRegistered(pods, g));
      const explain = opts.explainJoins ?? (async (g: string) => (await groupReplicationGaps(pods, g)).join('\n'));
      for (const g of routable) await waitFor(`every receiver's join of ${g} replicated`, () => joined(g), opts.awaitJoinsMs, { intervalMs: 50, explain: () => explain(g) });
    }
    if (opts.settleMs) await settle(opts.settleMs);
    await Promise.all(
      pods.map(async (pod) => {
        for (const kind of kinds) {
          for (let seq = 1; seq <= count; seq++) {
            // One socat per datagram: socat sends one datagram per read of its input, and a
            // single pipe write of several lines could arrive as one read.
            const payload = `kmcast-matrix ${nonce} ${kind} ${pod.name} ${seq}\n`;
            const argv = isV6(kind)
              ? [...as, python, '-c', SENDER6_MATRIX_PY, kind === 'multicast6' ? DEFAULT_GROUP6_MATRIX : DEFAULT_LINKLOCAL_GROUP6_MATRIX, String(o.port), 'eth0', kind === 'multicast6' ? '4' : '1']
              : [...as, socat, '-u', 'STDIN', socatAddress(kind, o)];
            const res = await runInNetns(pod.netns, argv, scaled(5000), payload);
            if (res.code !== 0) throw new KmcastError(`send ${kind} from pod ${pod.name} with socat: ${res.stderr.trim() || `exit code ${String(res.code)}`}`);
          }
        }
      }),
    );
    await settle(SETTLE_MS);
    for (const r of [...receivers, ...receivers6]) r.child.stdin?.end();
    await Promise.all([...receivers, ...receivers6].map((r) => waitExit(r.child, 5000)));
    const reports = new Map<string, ReceiverReport>();
    const report = (r: Receiver): ReceiverReport => {
      const line = r.out.split('\n').find((l) => l.startsWith('{'));
      if (line === undefined) throw new KmcastError(`read receiver report of pod ${r.pod.name}: none printed${r.err.trim() ? `\n${r.err.trim()}` : ''}`);
      return JSON.parse(line) as ReceiverReport;
    };
    for (const r of receivers) reports.set(r.pod.name, report(r));
    for (const r of receivers6) {
      const four = reports.get(r.pod.name)!;
      const six = report(r);
      reports.set(r.pod.name, { counts: { ...four.counts, ...six.counts }, other: four.other + six.other });
    }
    return buildMatrix(kinds, pods, count, reports);
  } finally {
    for (const r of [...receivers, ...receivers6]) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  }
}
