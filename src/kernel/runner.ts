/**
 * The one boundary that runs external commands. Argument arrays only, never a shell. The argv of
 * the kernel tools is written by the clients beside this file, one file per tool (ip.ts,
 * bridge.ts, nft.ts, sysctl.ts); this file only runs it, and says how a command enters a
 * namespace. The network namespace is a parameter of every call, never global state:
 * `ip`/`bridge` get `-n NS`, anything else runs under `ip netns exec NS`. A runner made with
 * `netnsEntry: 'nsenter'` enters with `nsenter --net=/var/run/netns/NS` instead: the node agent's
 * way, because `ip -n` and `ip netns exec` also unshare the mount namespace and remount /sys,
 * which a container runtime's default AppArmor profile denies (mount(2)); nsenter only setns()es.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { CommandError } from '../errors.js';

export interface RunOptions {
  /** Network namespace name (as in `ip netns list`); undefined = the caller's own namespace. */
  readonly netns?: string | undefined;
  /** Data written to the command's stdin (for `-batch -`, `nft -f -`). */
  readonly input?: string;
  /** Resolve with the result instead of throwing when the command exits non-zero. */
  readonly allowFail?: boolean;
  /** Kill the command after this many milliseconds (default 30 s). */
  readonly timeoutMs?: number;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit status; null when killed by a signal. */
  readonly code: number | null;
}

/** Interface is created to allow testing: unit tests use FakeRunner and assert the exact argv. */
export interface Runner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/** What iproute2 says when the device a command names is missing. */
const NO_DEVICE = /does not exist|Cannot find device|No such device/i;

/**
 * stdout of a read (`ip -j ... dev NAME`, `bridge -j ... dev NAME`), or undefined when the device
 * it names does not exist; any other failure throws the runner's CommandError (with stderr).
 */
export async function readUnlessMissing(runner: Runner, argv: readonly string[], netns: string | undefined): Promise<string | undefined> {
  const r = await runner.run(argv, { netns, allowFail: true });
  if (r.code === 0) return r.stdout;
  if (NO_DEVICE.test(r.stderr)) return undefined;
  // Re-run without allowFail to raise the standard CommandError with stderr.
  return (await runner.run(argv, { netns })).stdout;
}

/**
 * Options of a probe: a command whose failure is an answer (the doctors'), so it resolves with
 * the result whatever the exit code, and rejects only when the command cannot be started.
 */
export interface ProbeOptions {
  /** Kill the command after this many milliseconds (default: the runner's). */
  readonly timeoutMs?: number;
}

const NETNS_NATIVE = new Set(['ip', 'bridge', 'tc']);
/** Where iproute2 (and the container runtimes) keep named network namespaces. */
export const NETNS_RUN_DIR = '/var/run/netns';

/** How a command enters a named network namespace (see the header). */
export type NetnsEntry = 'iproute2' | 'nsenter';

/** The argv actually executed for `argv` in `netns`. Pure; exported for tests. */
export function netnsArgv(argv: readonly string[], netns: string | undefined, entry: NetnsEntry = 'iproute2'): string[] {
  if (!netns) return [...argv];
  const [cmd, ...rest] = argv;
  if (entry === 'iproute2' && cmd !== undefined && NETNS_NATIVE.has(cmd)) return [cmd, '-n', netns, ...rest];
  return netnsExecArgv(argv, netns, entry);
}

/**
 * The argv that execs `argv` inside `netns`, whatever the command (no `-n` shortcut): `ip netns
 * exec NS` (which also binds the files of /etc/netns/NS over /etc, e.g. a lab pod's
 * resolv.conf) or `nsenter --net=`. Both exec, so the process is the command's own. Pure.
 */
export function netnsExecArgv(argv: readonly string[], netns: string | undefined, entry: NetnsEntry = 'iproute2'): string[] {
  if (!netns) return [...argv];
  if (entry === 'nsenter') {
    // A name as `ip netns` lists it: a file in NETNS_RUN_DIR, never a path.
    if (netns.includes('/') || netns === '.' || netns === '..') throw new TypeError(`not a network namespace name: ${JSON.stringify(netns)}`);
    return ['nsenter', `--net=${NETNS_RUN_DIR}/${netns}`, '--', ...argv];
  }
  return ['ip', 'netns', 'exec', netns, ...argv];
}

/** Options of netnsSpawn: child_process.spawn's, and how to enter the namespace. */
export interface NetnsSpawnOptions extends SpawnOptions {
  /** Default 'iproute2' (`ip netns exec`); 'nsenter' keeps the caller's mount namespace. */
  readonly entry?: NetnsEntry;
}

/**
 * Starts `argv` inside `netns` (undefined: here) as a process the caller owns (long-running
 * helpers, interactive commands, the lab's services): the way code outside src/kernel runs a
 * program in another namespace. Spawn errors arrive as the child's 'error' event, as with spawn.
 */
export function netnsSpawn(argv: readonly string[], netns: string | undefined, options: NetnsSpawnOptions = {}): ChildProcess {
  const { entry, ...spawnOptions } = options;
  const [cmd, ...args] = netnsExecArgv(argv, netns, entry);
  if (cmd === undefined) throw new TypeError('netnsSpawn: empty argv');
  return spawn(cmd, args, spawnOptions);
}

/**
 * The argv of a long-running helper (`ip monitor ...`) in `netns`, started under
 * `setpriv --pdeathsig SIGKILL`: the kernel kills it when the agent dies, even by SIGKILL or an
 * OOM kill, when no exit handler runs. (The death signal belongs to the spawning thread, which
 * for a child_process spawn is the event-loop thread: it lives as long as the agent.) Pure.
 */
export function helperArgv(argv: readonly string[], netns: string | undefined, entry: NetnsEntry = 'iproute2'): string[] {
  return ['setpriv', '--pdeathsig', 'SIGKILL', '--', ...netnsArgv(argv, netns, entry)];
}

export class ExecRunner implements Runner {
  private readonly entry: NetnsEntry;

  constructor(opts: { netnsEntry?: NetnsEntry } = {}) {
    this.entry = opts.netnsEntry ?? 'iproute2';
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const full = netnsArgv(argv, options.netns, this.entry);
    const [cmd, ...args] = full;
    if (cmd === undefined) throw new TypeError('run: empty argv');
    return await new Promise<RunResult>((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new CommandError(full, null, e.message));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const result = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code };
        if (code === 0 || options.allowFail) resolve(result);
        else reject(new CommandError(full, code, result.stderr, signal));
      });
      child.stdin.on('error', () => undefined); // a command that exits early closes its stdin
      child.stdin.end(options.input ?? '');
    });
  }
}

export interface FakeCall {
  readonly argv: readonly string[];
  readonly netns: string | undefined;
  readonly input: string | undefined;
}

type FakeResponder = (call: FakeCall) => Partial<RunResult> | undefined;

/** Records calls and answers from responders (first match wins); default: success, empty output. */
export class FakeRunner implements Runner {
  readonly calls: FakeCall[] = [];
  private readonly responders: FakeResponder[] = [];

  /** Answer calls whose argv starts with `prefix` (joined by spaces) with `result`. */
  on(prefix: string, result: Partial<RunResult> | ((call: FakeCall) => Partial<RunResult>)): this {
    this.responders.push((call) => {
      if (!call.argv.join(' ').startsWith(prefix)) return undefined;
      return typeof result === 'function' ? result(call) : result;
    });
    return this;
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const call: FakeCall = { argv: [...argv], netns: options.netns, input: options.input };
    this.calls.push(call);
    let found: Partial<RunResult> | undefined;
    for (const r of this.responders) {
      found = r(call);
      if (found) break;
    }
    const result: RunResult = { stdout: found?.stdout ?? '', stderr: found?.stderr ?? '', code: found?.code ?? 0 };
    if (result.code !== 0 && !options.allowFail) throw new CommandError(argv, result.code, result.stderr);
    return await Promise.resolve(result);
  }

  /** The calls as joined argv strings, for compact assertions. */
  commands(): string[] {
    return this.calls.map((c) => c.argv.join(' '));
  }
}
