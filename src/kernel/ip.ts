/**
 * The `ip` command for one network namespace: a small typed client. Reads use `-j`; writes go through
 * `-batch -` so one reconcile is one or two processes, not one per entry.
 */
import type { Runner } from './runner.js';
import type { FdbEntry, LinkInfo, LinkStats, MdbEntry, RouteEntry, VxlanLink } from './parse.js';
import {
  parseIpv4AddrsOf,
  parseIpv4MaddrsOf,
  parseLinks,
  parseNetnsIds,
  parseRouteGet,
  parseFdb,
  parseIpv4Addrs,
  parseIpv4MaddrUsers,
  parseIpv4Maddrs,
  parseIpVersion,
  parseLink,
  parseLinkStats,
  parseMdb,
  parseRoutes,
} from './parse.js';

const NO_DEVICE = /does not exist|Cannot find device|No such device/i;

export class IpClient {
  constructor(
    readonly runner: Runner,
    /** The namespace to act in; undefined = our own (the agent inside its pod). */
    readonly netns?: string,
  ) {}

  private async read(argv: string[]): Promise<string | undefined> {
    const r = await this.runner.run(argv, { netns: this.netns, allowFail: true });
    if (r.code === 0) return r.stdout;
    if (NO_DEVICE.test(r.stderr)) return undefined;
    // Re-run without allowFail to raise the standard CommandError with stderr.
    return (await this.runner.run(argv, { netns: this.netns })).stdout;
  }

  /** The link with details, or undefined when it does not exist. */
  async link(name: string): Promise<VxlanLink | undefined> {
    const out = await this.read(['ip', '-j', '-d', 'link', 'show', 'dev', name]);
    return out === undefined ? undefined : parseLink(out);
  }

  async addrs(dev: string): Promise<string[]> {
    const out = await this.read(['ip', '-j', 'addr', 'show', 'dev', dev]);
    return out === undefined ? [] : parseIpv4Addrs(out);
  }

  async routes(): Promise<RouteEntry[]> {
    return parseRoutes((await this.runner.run(['ip', '-j', 'route', 'show', 'table', 'all'], { netns: this.netns })).stdout);
  }

  async defaultRoutes(): Promise<RouteEntry[]> {
    return parseRoutes((await this.runner.run(['ip', '-j', 'route', 'show', 'default'], { netns: this.netns })).stdout);
  }

  async fdb(dev: string): Promise<FdbEntry[]> {
    const out = await this.read(['bridge', '-j', 'fdb', 'show', 'dev', dev]);
    return out === undefined ? [] : parseFdb(out);
  }

  async mdb(dev: string): Promise<MdbEntry[]> {
    const out = await this.read(['bridge', '-j', 'mdb', 'show', 'dev', dev]);
    return out === undefined ? [] : parseMdb(out);
  }

  /** IPv4 groups joined on the device (by any socket in the namespace). */
  async maddrs(dev: string): Promise<string[]> {
    const out = await this.read(['ip', '-j', 'maddr', 'show', 'dev', dev]);
    return out === undefined ? [] : parseIpv4Maddrs(out);
  }

  /** Groups joined on the device with their join counts; undefined when the device does not exist. */
  async maddrUsers(dev: string): Promise<Map<string, number> | undefined> {
    const out = await this.read(['ip', '-j', 'maddr', 'show', 'dev', dev]);
    return out === undefined ? undefined : parseIpv4MaddrUsers(out);
  }

  async stats(dev: string): Promise<LinkStats | undefined> {
    const out = await this.read(['ip', '-j', '-s', 'link', 'show', 'dev', dev]);
    return out === undefined ? undefined : parseLinkStats(out);
  }

  async version(): Promise<[number, number] | undefined> {
    const r = await this.runner.run(['ip', '-V'], { allowFail: true });
    return parseIpVersion(r.stdout + r.stderr);
  }

  /** Runs lines through `ip -batch -`; stops at the first failing line (the error names it). */
  async ipBatch(lines: readonly string[]): Promise<void> {
    if (lines.length) await this.runner.run(['ip', '-batch', '-'], { netns: this.netns, input: `${lines.join('\n')}\n` });
  }

  async bridgeBatch(lines: readonly string[]): Promise<void> {
    if (lines.length) {
      await this.runner.run(['bridge', '-batch', '-'], { netns: this.netns, input: `${lines.join('\n')}\n` });
    }
  }

  /** The route to `ip` (`ip -j route get`), or undefined when there is none. */
  async routeGet(ip: string): Promise<ReturnType<typeof parseRouteGet>> {
    const r = await this.runner.run(['ip', '-j', 'route', 'get', ip], { netns: this.netns, allowFail: true });
    return r.code === 0 ? parseRouteGet(r.stdout) : undefined;
  }

  /** Every IPv4 route of every table (`ip -4 -j route show table all`). */
  async routes4(): Promise<RouteEntry[]> {
    return parseRoutes((await this.runner.run(['ip', '-4', '-j', 'route', 'show', 'table', 'all'], { netns: this.netns })).stdout);
  }

  /** The IPv4 policy rules, raw `ip -4 -j rule show` output. */
  async rules4(): Promise<string> {
    return (await this.runner.run(['ip', '-4', '-j', 'rule', 'show'], { netns: this.netns })).stdout;
  }

  /** Links with details: one device, (master) the ports of a bridge, or (all) every link. */
  async links(select: { dev: string } | { master: string } | { all: true }): Promise<LinkInfo[]> {
    const argv =
      'all' in select
        ? ['ip', '-j', '-d', 'link', 'show']
        : 'dev' in select
          ? ['ip', '-j', '-d', 'link', 'show', 'dev', select.dev]
          : ['ip', '-j', '-d', 'link', 'show', 'master', select.master];
    const out = await this.read(argv);
    return out === undefined ? [] : parseLinks(out);
  }

  /** This namespace's ids for other namespaces, with their names (`ip -j netns list-id`). */
  async netnsIds(): Promise<Map<number, string>> {
    return parseNetnsIds((await this.runner.run(['ip', '-j', 'netns', 'list-id'], { netns: this.netns })).stdout);
  }

  /** IPv4 groups joined on the device with `ifindex` (whatever its name). */
  async maddrsOfIndex(ifindex: number): Promise<string[]> {
    return parseIpv4MaddrsOf((await this.runner.run(['ip', '-j', 'maddr', 'show'], { netns: this.netns })).stdout, ifindex);
  }

  /** IPv4 addresses of the device with `ifindex`. */
  async addrsOfIndex(ifindex: number): Promise<string[]> {
    return parseIpv4AddrsOf((await this.runner.run(['ip', '-j', 'addr', 'show'], { netns: this.netns })).stdout, ifindex);
  }
}
