/**
 * Long-running `ip monitor` processes (the streaming side of the runner boundary): argv arrays,
 * never a shell, the namespace as a parameter (`ip -n NS monitor ...`). Each output line is
 * handed to the caller, who only uses it as a "something changed" trigger and re-reads with -j.
 * Each process runs under `setpriv --pdeathsig SIGKILL` (helperArgv): it dies with the agent.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { helperArgv } from './runner.js';

export interface MonitorHandle {
  stop(): void;
  /** False once the process exited (the caller restarts it on its next pass). */
  readonly running: boolean;
}

export interface Monitors {
  /** Starts `argv` (e.g. ['ip', 'monitor', 'link', 'route']) in `netns`. */
  start(argv: readonly string[], netns: string | undefined, onLine: (line: string) => void): MonitorHandle;
}

export class ExecMonitors implements Monitors {
  start(argv: readonly string[], netns: string | undefined, onLine: (line: string) => void): MonitorHandle {
    const full = helperArgv(argv, netns);
    const [cmd, ...args] = full;
    if (cmd === undefined) throw new TypeError('monitor: empty argv');
    let child: ChildProcess | undefined = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let running = true;
    let rest = '';
    child.stdout?.on('data', (b: Buffer) => {
      const text = rest + b.toString();
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) onLine(l);
    });
    child.once('error', () => {
      running = false;
    });
    child.once('exit', () => {
      running = false;
      child = undefined;
    });
    return {
      stop(): void {
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
  readonly started: Array<{ argv: readonly string[]; netns: string | undefined; onLine: (l: string) => void; stopped: boolean }> = [];
  start(argv: readonly string[], netns: string | undefined, onLine: (line: string) => void): MonitorHandle {
    const rec = { argv: [...argv], netns, onLine, stopped: false };
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
