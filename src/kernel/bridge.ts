/**
 * The `bridge` command for one network namespace: the forwarding (FDB) and multicast (MDB)
 * databases of a bridge or VXLAN device. The only file that writes `bridge` argv. Reads use `-j`;
 * writes go through `-batch -` (the lines are data: the overlay's plan renders them).
 */
import type { FdbEntry, MdbEntry } from './parse.js';
import { parseFdb, parseMdb } from './parse.js';
import type { ProbeOptions, RunResult, Runner } from './runner.js';
import { readUnlessMissing } from './runner.js';

export class BridgeClient {
  constructor(
    readonly runner: Runner,
    /** The namespace to act in; undefined = our own. */
    readonly netns?: string,
  ) {}

  /** The device's FDB (`bridge -j fdb show dev DEV`); empty when the device does not exist. */
  async fdb(dev: string): Promise<FdbEntry[]> {
    const out = await readUnlessMissing(this.runner, ['bridge', '-j', 'fdb', 'show', 'dev', dev], this.netns);
    return out === undefined ? [] : parseFdb(out);
  }

  /** The device's MDB (`bridge -j mdb show dev DEV`); empty when the device does not exist. */
  async mdb(dev: string): Promise<MdbEntry[]> {
    const out = await readUnlessMissing(this.runner, ['bridge', '-j', 'mdb', 'show', 'dev', dev], this.netns);
    return out === undefined ? [] : parseMdb(out);
  }

  /** Runs lines through `bridge -batch -`; stops at the first failing line (the error names it). */
  async batch(lines: readonly string[]): Promise<void> {
    if (lines.length) await this.runner.run(['bridge', '-batch', '-'], { netns: this.netns, input: `${lines.join('\n')}\n` });
  }

  /** Probe: adds a permanent MDB entry with a remote `dst` (VXLAN selective replication). */
  async probeMdbDst(dev: string, group: string, dst: string, opts: ProbeOptions = {}): Promise<RunResult> {
    const argv = ['bridge', 'mdb', 'add', 'dev', dev, 'port', dev, 'grp', group, 'permanent', 'dst', dst];
    return await this.runner.run(argv, { netns: this.netns, allowFail: true, ...opts });
  }

  /** Probe: `bridge mdb help` (its usage, on stderr with exit code 255, tells whether `dst` is known). */
  async mdbHelp(opts: ProbeOptions = {}): Promise<RunResult> {
    return await this.runner.run(['bridge', 'mdb', 'help'], { netns: this.netns, allowFail: true, ...opts });
  }
}
