/**
 * Long-running `ip monitor` processes (the streaming side of the runner boundary): argv arrays,
 * never a shell, the namespace as a parameter (`ip -n NS monitor ...`). Each output line is
 * handed to the caller, who only uses it as a "something changed" trigger and re-reads with -j.
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
}

export interface Monitors {
  /** Starts `argv` (e.g. ['ip', 'monitor', 'link', 'route']) in `netns`. */
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
        resume = setTimeout(() => {
          resume = undefined;
          child?.stdout?.resume();
        }, Math.max(1, windowStart + 100 - now));
        resume.unref();
      }
    });
    if (opts.onOverflow) {
      const onOverflow = opts.onOverflow;
      child.stderr?.on('data', (b: Buffer) => {
        if (b.toString().split('\n').some(isOverflowLine)) onOverflow();
      });
    }
    child.once('error', () => {
      running = false;
    });
    child.once('exit', () => {
      running = false;
      child = undefined;
    });
    return {
      stop(): void {
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

/** Records starts and lets tests push lines. */
export class FakeMonitors implements Monitors {
  readonly started: Array<{ argv: readonly string[]; netns: string | undefined; onLine: (l: string) => void; opts: MonitorOptions; stopped: boolean }> = [];
  start(argv: readonly string[], netns: string | undefined, onLine: (line: string) => void, opts: MonitorOptions = {}): MonitorHandle {
    const rec = { argv: [...argv], netns, onLine, opts, stopped: false };
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
