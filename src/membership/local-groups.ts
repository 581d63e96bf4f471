/**
 * The groups this pod's apps joined on the overlay device, without snooping: `ip monitor
 * maddress` wakes us on every join/leave, and each wake re-reads `ip -j maddr` (the state, not the
 * event, is the truth); a periodic re-read repairs a missed event or a dead monitor.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { IpClient } from '../iproute2/client.js';
import { netnsArgv } from '../iproute2/runner.js';
import type { Logger } from '../log.js';
import { sortIpv4 } from '../net/ipv4.js';

/** All-hosts group: every IPv4 interface is in it; implicit, never announced. */
export const ALL_HOSTS = '224.0.0.1';

export function announcedGroups(joined: readonly string[]): string[] {
  return sortIpv4(new Set(joined.filter((g) => g !== ALL_HOSTS)));
}

export interface LocalGroupsEvents {
  change: [groups: string[]];
}

export class LocalGroupsWatcher extends EventEmitter<LocalGroupsEvents> {
  private current: string[] = [];
  private monitor: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly ip: IpClient,
    private readonly device: string,
    private readonly log: Logger,
    private readonly resyncMs = 2000,
  ) {
    super();
  }

  groups(): string[] {
    return this.current;
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.startMonitor();
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.resyncMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.monitor?.kill();
    this.monitor = undefined;
  }

  /** Re-read now (coalesces concurrent calls: one read in flight, one queued). */
  async refresh(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return await this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        try {
          const next = announcedGroups(await this.ip.maddrs(this.device));
          if (next.join() !== this.current.join()) {
            this.current = next;
            this.emit('change', next);
          }
        } catch (err) {
          this.log.warn({ err }, 'reading joined groups failed');
        }
      } while (this.again && !this.stopped);
    })();
    try {
      await this.reading;
    } finally {
      this.reading = undefined;
    }
  }

  private startMonitor(): void {
    if (this.stopped) return;
    const [cmd, ...args] = netnsArgv(['ip', '-o', 'monitor', 'maddress'], this.ip.netns);
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    this.monitor = child;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (chunk.includes(' inet ')) void this.refresh();
    });
    child.on('error', (err) => this.log.warn({ err }, 'ip monitor maddress failed; relying on periodic re-reads'));
    child.on('exit', () => {
      if (this.monitor !== child || this.stopped) return;
      // Restart after a pause; the periodic re-read covers the gap.
      setTimeout(() => this.startMonitor(), 1000).unref();
    });
  }
}
