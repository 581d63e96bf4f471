/**
 * Long-running `ip monitor` processes (the streaming side of the runner boundary): the argv of
 * IP_MONITOR (src/kernel/ip.ts), never a shell, the namespace as a parameter (`ip -n NS monitor
 * ...`). Each output line is handed to the caller, who only uses it as a "something changed"
 * trigger and re-reads with -j.
 * Each process runs under `setpriv --pdeathsig SIGKILL` (helperArgv): it dies with the agent.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { helperArgv } from './runner.js';
import type { NetnsEntry } from './runner.js';

export interface MonitorHandle {
  stop(): void;
  /** False once the process exited (the caller restarts it on its next pass). */
  readonly running: boolean;
}

export interface MonitorOptions {
  /**
   * Reads at most this many lines per 100 ms: past it, the output is not read until the window
   * ends, so the process blocks on its pipe and the kernel drops the events its netlink socket
   * cannot queue (the process then reports ENOBUFS: `onOverflow`). A flood of events costs a
   * bounded amount of CPU; the caller re-reads what it may have missed.
   */
  readonly maxLinesPer100ms?: number;
  /** The process said events were lost (netlink ENOBUFS). */
  readonly onOverflow?: () => void;
  /** The process could not be started (or killed): its error. */
  readonly onError?: (err: Error) => void;
  /** The process exited by itself (not after stop()): the caller may restart it. */
  readonly onExit?: () => void;
}

export interface Monitors {
  /** Starts `argv` (one of IP_MONITOR, src/kernel/ip.ts) in `netns`. */
  start(argv: readonly string[], netns: string | undefined, onLine: (line: string) => void, opts?: MonitorOptions): MonitorHandle;
}

/** iproute2's report of a netlink receive buffer overrun (events lost). Pure. */
export function isOverflowLine(line: string): boolean {
  return /No buffer space available|ENOBUFS/.test(line);
}

export class ExecMonitors implements Monitors {
  private readonly entry: NetnsEntry;

  constructor(opts: { netnsEntry?: NetnsEntry } = {}) {
    this.entry = opts.netnsEntry ?? 'iproute2';
  }

  start(argv: readonly string[], netns: string | undefined, onLine: (line: string) => void, opts: MonitorOptions = {}): MonitorHandle {
    const full = helperArgv(argv, netns, this.entry);
    const [cmd, ...args] = full;
    if (cmd === undefined) throw new TypeError('monitor: empty argv');
    let child: ChildProcess | undefined = spawn(cmd, args, { stdio: ['ignore', 'pipe', opts.onOverflow ? 'pipe' : 'ignore'] });
    let running = true;
    let rest = '';
    let windowStart = 0;
    let linesInWindow = 0;
    let resume: NodeJS.Timeout | undefined;
    const max = opts.maxLinesPer100ms;
    child.stdout?.on('data', (b: Buffer) => {
      const text = rest + b.toString();
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) onLine(l);
      if (max === undefined) return;
      const now = Date.now();
      if (now - windowStart >= 100) {
        windowStart = now;
        linesInWindow = 0;
      }
      linesInWindow += lines.length;
      if (linesInWindow >= max && child?.stdout && !resume) {
        child.stdout.pause();
        resume = setTimeout(
          () => {
            resume = undefined;
            child?.stdout?.resume();
          },
          Math.max(1, windowStart + 100 - now),
        );
        resume.unref();
      }
    });
    if (opts.onOverflow) {
      const onOverflow = opts.onOverflow;
      child.stderr?.on('data', (b: Buffer) => {
        if (b.toString().split('\n').some(isOverflowLine)) onOverflow();
      });
    }
    let stopped = false;
    child.once('error', (err) => {
      running = false;
      opts.onError?.(err);
    });
    child.once('exit', () => {
      running = false;
      child = undefined;
      if (!stopped) opts.onExit?.();
    });
    return {
      stop(): void {
        stopped = true;
        if (resume) clearTimeout(resume);
        child?.kill('SIGTERM');
        child = undefined;
        running = false;
      },
      get running(): boolean {
        return running;
      },
    };
  }
}

export interface FakeMonitor {
  readonly argv: readonly string[];
  readonly netns: string | undefined;
  readonly onLine: (l: string) => void;
  readonly opts: MonitorOptions;
  /** Stopped by its owner, or exited (set it to simulate an exit nobody is told about). */
  stopped: boolean;
  /** Simulates the process exiting by itself: not running any more, and onExit is called. */
  exit(): void;
}

/** Records starts and lets tests push lines. */
export class FakeMonitors implements Monitors {
  readonly started: FakeMonitor[] = [];
  start(argv: readonly string[], netns: string | undefined, onLine: (line: string) => void, opts: MonitorOptions = {}): MonitorHandle {
    const rec: FakeMonitor = {
      argv: [...argv],
      netns,
      onLine,
      opts,
      stopped: false,
      exit(): void {
        if (rec.stopped) return;
        rec.stopped = true;
        opts.onExit?.();
      },
    };
    this.started.push(rec);
    return {
      stop(): void {
        rec.stopped = true;
      },
      get running(): boolean {
        return !rec.stopped;
      },
    };
  }
}
