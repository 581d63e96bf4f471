/**
 * A process and everything it started: the live tree's memory (VmRSS and private memory), and
 * the processes it spawns over a window, counted without strace.
 *
 * Spawns are counted from the kernel's process events (the netlink proc connector, root only,
 * in the initial network namespace): every fork whose parent is in the tree is counted and joins
 * the tree, however short-lived the child is, and its command line is read at its exec. Where the
 * connector cannot be opened the watcher samples the tree's children every 5 ms instead (a lower
 * bound: a child that lives less than that can be missed) and says so.
 */
import { readFile } from 'node:fs/promises';
import { childPids, findPython } from '../../src/lab/process.js';
import { spawnIn, stop } from './net.js';
import type { Proc } from './net.js';
import { parsePrivateBytes, parseVmRssBytes } from './pure.js';

/** `root` and every live descendant. */
export function processTree(root: number): number[] {
  const out: number[] = [];
  const walk = (pid: number): void => {
    out.push(pid);
    for (const c of childPids(pid)) walk(c);
  };
  walk(root);
  return out;
}

export interface TreeMemory {
  /** Processes in the tree, the root included. */
  readonly processes: number;
  /** VmRSS summed over the tree (shared pages counted once per process, as `ps` shows them). */
  readonly rssBytes: number;
  /** The root's own VmRSS. */
  readonly rootRssBytes: number;
}

/** VmRSS of `root` and of each live descendant, summed. */
export async function treeMemory(root: number): Promise<TreeMemory> {
  let rss = 0;
  let rootRss = 0;
  let n = 0;
  for (const pid of processTree(root)) {
    const v = parseVmRssBytes(await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''));
    if (v === undefined) continue; // gone in between (a short-lived helper)
    n++;
    rss += v;
    if (pid === root) rootRss = v;
  }
  return { processes: n, rssBytes: rss, rootRssBytes: rootRss };
}

/**
 * Private memory (USS: pages no other process maps) summed over the tree. Unlike VmRSS it does not
 * count the pages of a binary or library that many processes map (the node binary of other
 * Node.js processes on the machine, the ip binary of each helper) once per process.
 */
export async function treePrivate(root: number): Promise<number | null> {
  let sum = 0;
  let seen = 0;
  for (const pid of processTree(root)) {
    const v = parsePrivateBytes(await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => ''));
    if (v === undefined) continue;
    seen++;
    sum += v;
  }
  return seen ? sum : null;
}

// argv: root pid. Prints READY (and the method) once it watches, then, when stdin closes, one
// JSON line: {method, forks, lost, commands: {"ip maddr show": n, ...}, times: [ms, ...]}. A
// command is the program's name and its first two words that are not flags, after
// setpriv/nsenter wrappers; times are the forks' CLOCK_REALTIME in ms (the event's monotonic
// timestamp moved by the clocks' offset).
export const FORK_WATCH_PY = `
import json, os, select, socket, struct, sys, time
root = int(sys.argv[1])
tree, cmd, forks, lost, counted, times = {root}, {}, 0, 0, [], []
offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
def cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f: return [a.decode(errors='replace') for a in f.read().split(b'\\0')[:-1]]
    except OSError: return None
def name(argv):
    if not argv: return '(gone before its exec was read)'
    a = list(argv)
    while a and os.path.basename(a[0]) in ('setpriv', 'nsenter') and '--' in a: a = a[a.index('--') + 1:]
    if not a: return '(gone before its exec was read)'
    words = [w for w in a[1:] if not w.startswith('-')][:2]
    return ' '.join([os.path.basename(a[0])] + words)
def report(method):
    tally = {}
    for pid in counted:
        k = name(cmd.get(pid)); tally[k] = tally.get(k, 0) + 1
    print(json.dumps({'method': method, 'forks': forks, 'lost': lost, 'commands': tally, 'times': times}), flush=True)
stdin = sys.stdin.fileno()
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)  # NETLINK_CONNECTOR
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((os.getpid(), 1))  # CN_IDX_PROC
    op = struct.pack('I', 1)  # PROC_CN_MCAST_LISTEN
    cn = struct.pack('IIIIHH', 1, 1, 0, 0, len(op), 0) + op
    s.send(struct.pack('IHHII', 16 + len(cn), 3, 0, 0, os.getpid()) + cn)  # NLMSG_DONE
except OSError as e:
    s = None
    print('FALLBACK %s' % e, flush=True)
if s is not None:
    print('READY proc-connector', flush=True)
    while True:
        r, _, _ = select.select([s, stdin], [], [])
        if stdin in r and not os.read(stdin, 4096): break
        if s not in r: continue
        try: d = s.recv(65536)
        except OSError: lost += 1; continue
        # nlmsghdr 16 + cn_msg 20, then proc_event: what, cpu, timestamp_ns, data
        if len(d) < 60: continue
        what = struct.unpack_from('I', d, 36)[0]
        if what == 1:  # fork: parent pid, parent tgid, child pid, child tgid
            _, ptgid, cpid, ctgid = struct.unpack_from('IIII', d, 52)
            if ptgid in tree and cpid == ctgid:
                tree.add(ctgid); forks += 1; counted.append(ctgid)
                times.append(round((struct.unpack_from('Q', d, 44)[0] + offset) / 1e6, 3))
        elif what == 2:  # exec: pid, tgid
            _, tgid = struct.unpack_from('II', d, 52)
            if tgid in tree:
                c = cmdline(tgid)
                if c: cmd[tgid] = c
        elif what == 0x80000000:  # exit: pid, tgid
            pid, tgid = struct.unpack_from('II', d, 52)
            if pid == tgid and tgid != root: tree.discard(tgid)
    report('proc-connector')
else:
    print('READY sampling-5ms', flush=True)
    seen = set()
    def children(pid):
        out = []
        try: tasks = os.listdir('/proc/%d/task' % pid)
        except OSError: return out
        for t in tasks:
            try:
                with open('/proc/%d/task/%s/children' % (pid, t)) as f: out += [int(x) for x in f.read().split()]
            except OSError: pass
        return out
    def walk():
        stack, out = [root], []
        while stack:
            p = stack.pop()
            for c in children(p): out.append(c); stack.append(c)
        return out
    seen.update(walk())
    while True:
        r, _, _ = select.select([stdin], [], [], 0.005)
        if stdin in r and not os.read(stdin, 4096): break
        for c in walk():
            if c not in seen:
                seen.add(c); forks += 1; counted.append(c); times.append(round(time.time() * 1000, 3))
                a = cmdline(c)
                if a: cmd[c] = a
    report('sampling-5ms')
`;

export interface SpawnCount {
  /** 'proc-connector' (exact) or 'sampling-5ms' (a lower bound). */
  readonly method: string;
  readonly forks: number;
  /** Netlink receive errors (events the kernel dropped for the watcher): the count is then a lower bound. */
  readonly lost: number;
  /** Spawns by command (program and first two words that are not flags). */
  readonly commands: Readonly<Record<string, number>>;
  /** When each spawn happened, ms since the epoch (wall clock), in order. */
  readonly times: readonly number[];
}

export interface SpawnWatch {
  readonly method: string;
  stop(): Promise<SpawnCount>;
}

/** Starts counting the processes `root` and its descendants spawn (in the bench's own namespace, as root). */
export async function watchSpawns(root: number): Promise<SpawnWatch> {
  const p: Proc = spawnIn(undefined, [findPython(), '-c', FORK_WATCH_PY, String(root)], undefined, { stdin: 'pipe' });
  const deadline = Date.now() + 10_000;
  let m: RegExpExecArray | null = null;
  while (!(m = /^READY (\S+)$/m.exec(p.out))) {
    if (p.child.exitCode !== null || Date.now() > deadline) {
      await stop(p, 'SIGKILL', 500);
      throw new Error(`spawn watcher did not start: ${p.err.trim() || p.out.trim() || 'no READY'}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const method = m[1] ?? 'unknown';
  return {
    method,
    async stop(): Promise<SpawnCount> {
      p.child.stdin?.end();
      await Promise.race([p.exited, new Promise((r) => setTimeout(r, 5000))]);
      await stop(p, 'SIGKILL', 500);
      const line = p.out.trim().split('\n').pop() ?? '';
      try {
        return JSON.parse(line) as SpawnCount;
      } catch {
        throw new Error(`spawn watcher gave no report: ${p.err.trim() || p.out.slice(-300)}`);
      }
    },
  };
}
