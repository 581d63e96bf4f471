/**
 * Processes inside lab namespaces: spawn (pid recorded so labDown can kill it even if this
 * process dies), the agent, an HTTP GET and an ICMP ping from inside a pod, and waitFor.
 */
import { AGENT_ENV, AGENT_NODE_FLAGS } from '../sidecar/runtime.js';
import { spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CapabilityError, CommandError, KmcastError, errorMessage } from '../errors.js';
import { IpClient } from '../kernel/ip.js';
import { ExecRunner, netnsSpawn } from '../kernel/runner.js';
import type { Lab, LabNode, LabPod } from './types.js';
import { forgetPid, recordPid } from './state.js';
import { hostPort } from './plan.js';

/** dist/src/lab/process.js -> dist/src/cli/main.js */
export const KMCAST_MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
export const DNS_SERVER_SCRIPT = fileURLToPath(new URL('./dns-server.js', import.meta.url));
export const DEFAULT_AGENT_HTTP_PORT = 9470;
/** The node agent's HTTP port (src/node/api.ts NODE_HTTP_PORT; not imported: the lab stays apart from the agent). */
export const NODE_AGENT_HTTP_PORT = 9471;

export interface SpawnInNetnsOptions {
  /** stdout and stderr are appended to this file; without it they are pipes for the caller. */
  readonly logFile?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Own process group and not holding our event loop: it outlives this process (lab services). */
  readonly detached?: boolean;
  /** 'pipe' to talk to the process on stdin (default: no stdin). */
  readonly stdin?: 'pipe' | 'ignore';
  /**
   * 'host': enter only the network namespace (nsenter), keeping the host's mount namespace, so
   * the mounts the process makes are everyone's (a node's containerd and kubelet must see each
   * other's). Default: `ip netns exec`, which gives the process a mount namespace of its own.
   */
  readonly mounts?: 'own' | 'host';
}

/**
 * Runs argv in `netns` via `ip netns exec` (which execs, so the pid is the command's own; see
 * netnsSpawn in src/kernel/runner.ts) and records the pid in the lab's state dir so labDown kills it.
 */
export function spawnInNetns(netns: string, argv: readonly string[], opts: SpawnInNetnsOptions = {}): ChildProcess {
  let fd: number | undefined;
  if (opts.logFile) fd = openSync(opts.logFile, 'a');
  try {
    const child = netnsSpawn(argv, netns, {
      entry: opts.mounts === 'host' ? 'nsenter' : 'iproute2',
      stdio: fd === undefined ? [opts.stdin ?? 'ignore', 'pipe', 'pipe'] : [opts.stdin ?? 'ignore', fd, fd],
      env: opts.env ?? process.env,
      detached: opts.detached ?? false,
    });
    if (child.pid !== undefined) {
      const pid = child.pid;
      recordPid(netns, pid, argv);
      child.once('exit', () => void forgetPid(netns, pid).catch(() => undefined));
    }
    if (opts.detached) child.unref();
    return child;
  } finally {
    if (fd !== undefined) closeSync(fd); // the child holds its own copy
  }
}

/** Resolves once the child is running; rejects with a clear error when it could not start. */
export async function spawned(child: ChildProcess, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new CommandError([...child.spawnargs], null, `start ${what}: ${err.message}`)));
  });
}

/**
 * Waits for the child to exit (killing it with SIGKILL after `graceMs`, scaled) and for its stdio
 * to close, so what it printed last is in the caller's buffers; returns its exit code. Node.js may
 * emit 'exit' before the last stdout chunk is read: a report printed just before exiting would be
 * missed. A daemon that inherited the pipes could hold them open, so the close is awaited for a
 * bounded time only.
 */
export async function waitExit(child: ChildProcess, graceMs = 5000): Promise<number | null> {
  const closed = new Promise<void>((resolve) => {
    if (child.stdout === null && child.stderr === null) resolve();
    else child.once('close', () => resolve());
  });
  let code: number | null;
  if (child.exitCode !== null || child.signalCode !== null) code = child.exitCode;
  else {
    code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), scaled(graceMs));
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }
  const stdioClosed = child.stdout?.closed !== false && child.stderr?.closed !== false;
  if (!stdioClosed) await Promise.race([closed, sleep(scaled(2000))]);
  return code;
}

export interface AgentHandle {
  readonly pod: LabPod;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Sends `signal` (default SIGTERM), waits for the exit and returns the exit code (null if killed). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `kmcast agent` in the pod: `<node> dist/src/cli/main.js agent --service <lab service>
 * --log-level debug ...extraArgs`, logs to <stateDir>/<pod>.agent.log. KMCAST_POD_IP is set as the
 * downward API would: the pod's primary address, IPv6 in an IPv6-only lab (the agent's underlay is
 * then IPv6 and it asks the lab DNS, at the IPv6 address in the pod's resolv.conf, for AAAA
 * records). Resolves once the process runs, not once it is ready: poll /readyz for that.
 * `env` is merged over ours (e.g. a PATH with a fault-injecting `bridge` first).
 */
export async function startAgent(lab: Lab, pod: LabPod, extraArgs: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<AgentHandle> {
  return await startAgentProcess(lab, pod, extraArgs, { detached: false, env });
}

/** startAgent with a choice: `detached` agents outlive this process (`kmcast lab up --agents`). */
export async function startAgentProcess(
  lab: Lab,
  pod: LabPod,
  extraArgs: readonly string[],
  opts: {
    detached: boolean;
    env?: NodeJS.ProcessEnv;
    /** Node.js/V8 options before the script; default: the image's (src/sidecar/runtime.ts). */
    nodeArgs?: readonly string[];
  },
): Promise<AgentHandle> {
  const logFile = join(lab.stateDir, `${pod.name}.agent.log`);
  // Started as the image starts it (deploy/Dockerfile), so the lab measures what ships.
  const argv = [process.execPath, ...(opts.nodeArgs ?? AGENT_NODE_FLAGS), KMCAST_MAIN, 'agent', '--service', lab.spec.service, '--log-level', 'debug', ...extraArgs];
  const child = spawnInNetns(pod.netns, argv, { logFile, env: { ...process.env, ...AGENT_ENV, ...opts.env, KMCAST_POD_IP: pod.ip }, detached: opts.detached });
  await spawned(child, `kmcast agent in pod ${pod.name}`);
  return {
    pod,
    child,
    logFile,
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return await waitExit(child, 10_000);
    },
  };
}

export interface NodeAgentHandle {
  readonly node: LabNode;
  readonly child: ChildProcess;
  readonly logFile: string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `kmcast node` in the NODE namespace (node mode: the pods hold no agent): `--peers` every
 * node's underlay IP, `--dns-server` the lab DNS (node namespaces have no resolv.conf of their own),
 * `--log-level debug`, `--insecure-no-key` when `extraArgs` has no `--key-file` (unless `keyless` says
 * otherwise), then `extraArgs` (the domains: `--service NAME[=VNI]`...). Logs to
 * <stateDir>/n<i>.node.log. Resolves once the process runs; poll /readyz (nodeFetch) for ready.
 */
export async function startNodeAgent(
  lab: Lab,
  node: LabNode,
  extraArgs: readonly string[],
  opts: {
    detached?: boolean;
    env?: NodeJS.ProcessEnv;
    keyless?: boolean;
    /**
     * A command that execs the agent, e.g. `setpriv --bounding-set=-net_broadcast
     * --inh-caps=-net_broadcast --` to run it without a capability; it must exec (not fork), so
     * the handle's pid stays the agent's.
     */
    wrap?: readonly string[];
    /** List every node's address with --peers (default true); false: the caller finds them (--peers-service). */
    staticPeers?: boolean;
  } = {},
): Promise<NodeAgentHandle> {
  const logFile = join(lab.stateDir, `n${node.index}.node.log`);
  const peers = opts.staticPeers === false ? [] : ['--peers', lab.nodes.map((n) => n.underlayIp).join(',')];
  // A lab without a key runs keyless on purpose (the agent refuses that unless told).
  const keyless = opts.keyless ?? !extraArgs.includes('--key-file');
  const argv = [...(opts.wrap ?? []), process.execPath, ...AGENT_NODE_FLAGS, KMCAST_MAIN, 'node', ...peers, '--dns-server', hostPort(lab.dns.ip, lab.dns.port), '--log-level', 'debug', ...(keyless ? ['--insecure-no-key'] : []), ...extraArgs];
  const child = spawnInNetns(node.netns, argv, { logFile, env: { ...process.env, ...AGENT_ENV, ...opts.env }, detached: opts.detached ?? false });
  await spawned(child, `kmcast node in ${node.netns}`);
  return {
    node,
    child,
    logFile,
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return await waitExit(child, 10_000);
    },
  };
}

/**
 * What an agent shows now, for a failure message: whether it runs, its /status (cut to `maxChars`)
 * and the last `lines` lines of its log. Never throws: each part says why it is missing.
 */
export async function agentEvidence(a: AgentHandle | NodeAgentHandle, opts: { lines?: number; maxChars?: number } = {}): Promise<string> {
  const node = 'node' in a;
  const netns = node ? a.node.netns : a.pod.netns;
  const port = node ? NODE_AGENT_HTTP_PORT : DEFAULT_AGENT_HTTP_PORT;
  const who = node ? `node agent in ${netns}` : `agent in pod ${a.pod.name}`;
  const state = a.child.exitCode !== null || a.child.signalCode !== null ? `exited (${String(a.child.exitCode ?? a.child.signalCode)})` : `running (pid ${String(a.child.pid)})`;
  let status: string;
  try {
    const r = await netnsFetch(netns, '/status', port);
    status = `HTTP ${r.status} ${r.body.slice(0, opts.maxChars ?? 2000)}`;
  } catch (err) {
    status = `unavailable: ${errorMessage(err)}`;
  }
  let tail: string;
  try {
    tail = readFileSync(a.logFile, 'utf8').trimEnd().split('\n').slice(-(opts.lines ?? 12)).join('\n');
  } catch (err) {
    tail = `unreadable: ${errorMessage(err)}`;
  }
  return `--- ${who}: ${state}\n/status: ${status}\nlog (last lines):\n${tail}`;
}

/** agentEvidence of several agents, one after the other. */
export async function agentsEvidence(agents: Iterable<AgentHandle | NodeAgentHandle>, opts: { lines?: number; maxChars?: number } = {}): Promise<string> {
  const parts: string[] = [];
  for (const a of agents) parts.push(await agentEvidence(a, opts));
  return parts.join('\n');
}

// GETs with python3's urllib (it starts in a fraction of a Node.js process's time): prints one
// JSON line {"status", "body"} per URL for any HTTP answer; exits 1 with the reason on a network error.
const FETCH_PY = `
import errno, json, sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for url in sys.argv[1:]:
    try:
        r = opener.open(url, timeout=5); print(json.dumps({'status': r.status, 'body': r.read().decode()}))
    except urllib.error.HTTPError as e:
        print(json.dumps({'status': e.code, 'body': e.read().decode()}))
    except Exception as e:
        reason = getattr(e, 'reason', e)
        sys.stderr.write(errno.errorcode.get(getattr(reason, 'errno', None) or 0, str(reason))); sys.exit(1)
`;

/** HTTP GET http://127.0.0.1:<port><path> inside any lab namespace (a node agent's listener). */
export async function netnsFetch(netns: string, path: string, port: number): Promise<{ status: number; body: string }> {
  const [r] = await netnsFetchAll(netns, [path], port);
  return r!;
}

/** Several GETs in one process (one namespace entry), in order. */
export async function netnsFetchAll(netns: string, paths: readonly string[], port: number, where = netns): Promise<Array<{ status: number; body: string }>> {
  const urls = paths.map((path) => `http://127.0.0.1:${port}${path.startsWith('/') ? path : `/${path}`}`);
  return await netnsGet(netns, urls, { where });
}

/**
 * GETs of full URLs from inside a namespace, in order, in one process; `as` runs it under a
 * prefix (e.g. UNPRIVILEGED, as a pod's app would ask). A network error throws with the reason.
 */
export async function netnsGet(netns: string, urls: readonly string[], opts: { where?: string; as?: readonly string[]; timeoutMs?: number } = {}): Promise<Array<{ status: number; body: string }>> {
  const r = await runInNetns(netns, [...(opts.as ?? []), findPython(), '-c', FETCH_PY, ...urls], scaled(opts.timeoutMs ?? 10_000));
  if (r.code !== 0) throw new KmcastError(`fetch ${urls.join(' ')} in ${opts.where ?? netns}: ${r.stderr.trim() || `exit code ${String(r.code)}`}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { status: number; body: string });
}

interface CapturedRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv in a namespace, capturing output, with a hard timeout. */
export async function runInNetns(netns: string, argv: readonly string[], timeoutMs = 10_000, input?: string): Promise<CapturedRun> {
  const child = netnsSpawn(argv, netns, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  } finally {
    clearTimeout(timer);
  }
}

// One fetch, printed as JSON; a network error exits 1 with the reason on stderr.

/** HTTP GET http://127.0.0.1:<port><path> inside the pod (the agent's HTTP server is pod-local). */
export async function podFetch(pod: LabPod, path: string, port = DEFAULT_AGENT_HTTP_PORT): Promise<{ status: number; body: string }> {
  const [r] = await netnsFetchAll(pod.netns, [path], port, `pod ${pod.name}`);
  return r!;
}

/** The environment variable that stretches every deadline of the lab, the demo and the tests. */
export const TIMEOUT_SCALE_ENV = 'KMCAST_TIMEOUT_SCALE';

/**
 * The factor every lab, demo and test deadline is multiplied by: KMCAST_TIMEOUT_SCALE (a number
 * from 0.5 to 20, default 1), so a slow or loaded machine gets more time without editing a test.
 * Deadlines stretch, never the intervals of the agents under test.
 */
export function timeoutScale(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[TIMEOUT_SCALE_ENV];
  if (raw === undefined || raw.trim() === '') return 1;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0.5 || v > 20) {
    throw new KmcastError(`${TIMEOUT_SCALE_ENV}=${raw}: expected a number from 0.5 to 20 (a factor for every test and lab deadline)`);
  }
  return v;
}

/** `ms` times the timeout scale, rounded. */
export function scaled(ms: number): number {
  return Math.round(ms * timeoutScale());
}

export interface WaitOptions {
  /** Poll interval, ms (default 100; not scaled). */
  readonly intervalMs?: number;
  /**
   * What was seen, for the failure message: called once on timeout (agent /status, entries, the
   * last log lines), so a failure on another machine can be diagnosed from the output alone.
   */
  readonly explain?: () => Promise<string> | string;
}

/**
 * Polls `fn` until it returns a value other than undefined or false, for at most `timeoutMs`
 * (scaled by KMCAST_TIMEOUT_SCALE); errors thrown by `fn` count as "not yet" and the last one is
 * quoted on timeout, with what `explain` says was seen. The 4th argument may be the poll interval
 * in ms or the options.
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, opts: number | WaitOptions = {}): Promise<T> {
  const o: WaitOptions = typeof opts === 'number' ? { intervalMs: opts } : opts;
  const intervalMs = o.intervalMs ?? 100;
  const budget = scaled(timeoutMs);
  const start = Date.now();
  const deadline = start + budget;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.max(0, Math.min(intervalMs, deadline - Date.now())));
  }
  const why = lastError === undefined ? '' : ` (last error: ${errorMessage(lastError)})`;
  let seen = '';
  if (o.explain) {
    try {
      seen = `\nseen at the deadline:\n${(await o.explain()).trim()}`;
    } catch (err) {
      seen = `\n(explain failed: ${errorMessage(err)})`;
    }
  }
  const scale = timeoutScale();
  const scaleNote = scale === 1 ? '' : ` [${timeoutMs} ms x ${TIMEOUT_SCALE_ENV}=${scale}]`;
  throw new KmcastError(`timed out after ${budget} ms waiting for ${what}${why}${scaleNote}${seen}`);
}

/**
 * An observation window, not a synchronisation: time for datagrams already sent to arrive (or,
 * where nothing may arrive, for a wrong copy to show up). Scaled like every deadline.
 */
export async function settle(ms: number): Promise<void> {
  await sleep(scaled(ms));
}

let python: string | undefined;

/**
 * The python3 on PATH, or a CapabilityError that says how to get one. Resolved once to the real
 * interpreter (sys.executable): version-manager shims cost ~200 ms per start, the binary ~20 ms.
 */
export function findPython(): string {
  if (python !== undefined) return python;
  const onPath = findTool('python3', 'python3 (e.g. apt-get install python3)');
  const r = spawnSync(onPath, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', timeout: 10_000 });
  const real = r.status === 0 ? r.stdout.trim() : '';
  python = real !== '' ? real : onPath;
  return python;
}

export function findTool(name: string, how: string): string {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  throw new CapabilityError(`find ${name}: not on PATH; the lab's traffic tools need it: install ${how}`);
}

// ICMP echo over a raw socket (we are root in the lab): a real ping without depending on iputils.
// An IPv6 destination is pinged with ICMPv6 (echo 128/129): the kernel fills in its checksum (it
// covers a pseudo-header) and a raw ICMPv6 socket receives no IP header.
const PING_PY = `
import os, socket, struct, sys, time
dst, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ':' in dst
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
if v6: s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
else: s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
req, rep = (128, 129) if v6 else (8, 0)
got = 0
for seq in range(1, count + 1):
    body = b'kmcast-lab-ping'
    hdr = struct.pack('!BBHHH', req, 0, 0, ident, seq)
    s.sendto(struct.pack('!BBHHH', req, 0, 0 if v6 else csum(hdr + body), ident, seq) + body, (dst, 0))
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0: break
        s.settimeout(left)
        try: pkt, addr = s.recvfrom(2048)
        except socket.timeout: break
        ihl = 0 if v6 else (pkt[0] & 15) * 4
        if len(pkt) < ihl + 8: continue
        t, _, _, i, q = struct.unpack('!BBHHH', pkt[ihl:ihl + 8])
        if t == rep and i == ident and q == seq and socket.inet_pton(s.family, addr[0].split('%')[0]) == socket.inet_pton(s.family, dst):
            got += 1; break
print(got)
`;

/**
 * ICMP echo from a pod (or any lab namespace, e.g. a LAN host) to `ip`, IPv4 or IPv6 (ICMPv6):
 * how many of `count` requests were answered.
 */
export async function pingFrom(pod: Pick<LabPod, 'name' | 'netns'>, ip: string, opts: { count?: number; timeoutMs?: number } = {}): Promise<{ sent: number; received: number }> {
  const count = opts.count ?? 1;
  const timeoutS = (opts.timeoutMs ?? 2000) / 1000;
  const r = await runInNetns(pod.netns, [findPython(), '-c', PING_PY, ip, String(count), String(timeoutS)], count * (timeoutS * 1000 + 1000) + 5000);
  if (r.code !== 0) throw new KmcastError(`ping ${ip} from pod ${pod.name}: ${r.stderr.trim() || `exit code ${String(r.code)}`}`);
  return { sent: count, received: Number(r.stdout.trim()) };
}

/**
 * Polls pingFrom until `ip` answers (neighbour discovery and routes take a moment after a build or a
 * change), for at most `timeoutMs` (scaled); throws with the last result on timeout.
 */
export async function waitPing(pod: Pick<LabPod, 'name' | 'netns'>, ip: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(`${ip} to answer ping from pod ${pod.name}`, async () => (await pingFrom(pod, ip, { timeoutMs: 1000 })).received > 0, timeoutMs, 50);
}

/**
 * Resolves `name` inside a pod through its /etc/resolv.conf (the lab DNS), as a pod's resolver
 * does: 'A' or 'AAAA'. Returns the sorted addresses, or the error code (e.g. 'ENOTFOUND', or
 * 'ENODATA' for a name without records of that family).
 */
export async function resolveInPod(pod: Pick<LabPod, 'name' | 'netns'>, name: string, type: 'A' | 'AAAA' = 'A'): Promise<string[] | string> {
  const js =
    "const {Resolver}=require('node:dns').promises;const r=new Resolver({timeout:700,tries:2});" +
    "(process.argv[2]==='AAAA'?r.resolve6(process.argv[1]):r.resolve4(process.argv[1]))" +
    '.then(a=>console.log(JSON.stringify(a.sort()))).catch(e=>console.log(JSON.stringify(e.code)))';
  const r = await runInNetns(pod.netns, [process.execPath, '-e', js, name, type], scaled(10_000));
  if (r.code !== 0) throw new KmcastError(`resolve ${type} ${name} in pod ${pod.name}: ${r.stderr.trim() || `exit code ${String(r.code)}`}`);
  return JSON.parse(r.stdout) as string[] | string;
}

/** Pids of the processes inside `netns` (the scan labDown relies on when pid records are lost). */
export async function netnsPids(netns: string): Promise<number[]> {
  return await new IpClient(new ExecRunner()).netnsPids(netns);
}

/** True while `pid` runs (a zombie counts as gone: it only waits to be reaped). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * CPU (user + system, seconds) `pid` used so far: its own, its reaped children's, and with
 * `tree` every live descendant's too (an agent's helper processes, e.g. `ip monitor`, are
 * reaped only when they exit). 0 for a process that is gone. USER_HZ is 100 on Linux.
 */
export function cpuSeconds(pid: number | undefined, opts: { tree?: boolean } = {}): number {
  if (pid === undefined) return 0;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // fields 14-17 of proc(5) (utime stime cutime cstime) are 11-14 after the command name
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let s = [11, 12, 13, 14].reduce((acc, i) => acc + Number(f[i] ?? 0), 0) / 100;
  if (opts.tree) for (const c of childPids(pid)) s += cpuSeconds(c, opts);
  return s;
}

/** The live children of `pid` (every thread's), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(/\s+/)) if (/^\d+$/.test(c)) out.push(Number(c));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** The command line of `pid`, or undefined when it is gone. */
export function cmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL whatever still runs after `graceMs`. Returns how many were signalled. */
export async function killPids(pids: readonly number[], graceMs = 1500): Promise<number> {
  let n = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
      n++;
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(25);
  for (const pid of pids.filter(isAlive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone in between
    }
  }
  return n;
}
