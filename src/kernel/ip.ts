/**
 * The `ip` command for one network namespace: a small typed client, and the only file that writes
 * `ip` argv (how any command enters a namespace, `ip -n` or `ip netns exec`, is the runner's).
 * Reads use `-j`; writes go through `-batch -` so one reconcile is one or two processes, not one
 * per entry (the lines are data: src/overlay/plan.ts and the node modules render them).
 */
import { BridgeClient } from './bridge.js';
import type { ProbeOptions, RunResult, Runner } from './runner.js';
import { readUnlessMissing } from './runner.js';
import type { LinkInfo, LinkStats, RouteEntry, VxlanLink } from './parse.js';
import {
  parseIpv4AddrsOf,
  parseIpv4MaddrsOf,
  parseIpv6AddrsOf,
  parseMaddrsOf,
  parseAllMaddrs,
  parseLinks,
  parseNetnsIds,
  parseNetnsNames,
  parsePids,
  parseRouteGet,
  parseIpv4Addrs,
  parseIpv4MaddrUsers,
  parseMaddrUsers,
  parseIpv6Addrs,
  parseIpv4Maddrs,
  parseIpVersion,
  parseLink,
  parseLinkStats,
  parseRoutes,
} from './parse.js';

/**
 * The `ip monitor` commands the agents stream (Monitors, monitor.ts, runs them in a namespace).
 * Each line is only a "something changed" trigger: the caller re-reads the state with -j.
 */
export const IP_MONITOR = {
  /** Links and routes of the namespace (the node agent's wake-up for a full pass). */
  linkRoute: ['ip', 'monitor', 'link', 'route'],
  /** Multicast address changes (joins, leaves) of the namespace. */
  maddress: ['ip', 'monitor', 'maddress'],
  /** The same, one line per event (`-o`): the sidecar's join watcher. */
  maddressOneline: ['ip', '-o', 'monitor', 'maddress'],
  /**
   * Multicast address changes of every namespace with an id in this one, each line starting with
   * `[nsid N]` (NETLINK_LISTEN_ALL_NSID: needs CAP_NET_BROADCAST).
   */
  maddressAllNsid: ['ip', 'monitor', 'maddress', 'all-nsid'],
} as const satisfies Record<string, readonly string[]>;

export class IpClient {
  /** The `bridge` command (FDB, MDB) in the same namespace. */
  readonly bridge: BridgeClient;

  constructor(
    readonly runner: Runner,
    /** The namespace to act in; undefined = our own (the agent inside its pod). */
    readonly netns?: string,
  ) {
    this.bridge = new BridgeClient(runner, netns);
  }

  private async read(argv: string[]): Promise<string | undefined> {
    return await readUnlessMissing(this.runner, argv, this.netns);
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

  /** The device's global IPv6 addresses, as ADDRESS/PREFIXLEN. */
  async addrs6(dev: string): Promise<string[]> {
    const out = await this.read(['ip', '-j', 'addr', 'show', 'dev', dev]);
    return out === undefined ? [] : parseIpv6Addrs(out);
  }

  async routes(): Promise<RouteEntry[]> {
    return parseRoutes((await this.runner.run(['ip', '-j', 'route', 'show', 'table', 'all'], { netns: this.netns })).stdout);
  }

  async defaultRoutes(): Promise<RouteEntry[]> {
    return parseRoutes((await this.runner.run(['ip', '-j', 'route', 'show', 'default'], { netns: this.netns })).stdout);
  }

  /** The IPv6 default routes (`ip -6 -j route show default`). */
  async defaultRoutes6(): Promise<RouteEntry[]> {
    return parseRoutes((await this.runner.run(['ip', '-6', '-j', 'route', 'show', 'default'], { netns: this.netns })).stdout);
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

  /** Groups of both families joined on the device, with their join counts; undefined when the device does not exist. */
  async groupUsers(dev: string): Promise<Map<string, number> | undefined> {
    const out = await this.read(['ip', '-j', 'maddr', 'show', 'dev', dev]);
    return out === undefined ? undefined : parseMaddrUsers(out);
  }

  /** Every IPv6 route of every table (`ip -6 -j route show table all`: each names its table but main). */
  async routes6(): Promise<RouteEntry[]> {
    return parseRoutes((await this.runner.run(['ip', '-6', '-j', 'route', 'show', 'table', 'all'], { netns: this.netns })).stdout);
  }

  async stats(dev: string): Promise<LinkStats | undefined> {
    const out = await this.read(['ip', '-j', '-s', 'link', 'show', 'dev', dev]);
    return out === undefined ? undefined : parseLinkStats(out);
  }

  async version(): Promise<[number, number] | undefined> {
    const r = await this.versionOutput();
    return parseIpVersion(r.stdout + r.stderr);
  }

  /** Runs lines through `ip -batch -`; stops at the first failing line (the error names it). */
  async ipBatch(lines: readonly string[]): Promise<void> {
    if (lines.length) await this.runner.run(['ip', '-batch', '-'], { netns: this.netns, input: `${lines.join('\n')}\n` });
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
      'all' in select ? ['ip', '-j', '-d', 'link', 'show'] : 'dev' in select ? ['ip', '-j', '-d', 'link', 'show', 'dev', select.dev] : ['ip', '-j', '-d', 'link', 'show', 'master', select.master];
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

  /**
   * The groups of both families joined on the device with `ifindex` and its global IPv6
   * addresses, from one process (`ip -j -batch -`: one JSON document a line).
   */
  async groupsAndIpv6OfIndex(ifindex: number): Promise<{ groups: string[]; ipv6: string[] }> {
    const out = (await this.runner.run(['ip', '-j', '-batch', '-'], { netns: this.netns, input: 'maddr show\naddr show\n' })).stdout;
    const [maddrs = '[]', addrs = '[]'] = out.split('\n').filter((l) => l.trim() !== '');
    return { groups: parseMaddrsOf(maddrs, ifindex), ipv6: parseIpv6AddrsOf(addrs, ifindex) };
  }

  /** IPv4 addresses of the device with `ifindex`. */
  async addrsOfIndex(ifindex: number): Promise<string[]> {
    return parseIpv4AddrsOf((await this.runner.run(['ip', '-j', 'addr', 'show'], { netns: this.netns })).stdout, ifindex);
  }

  /** IPv4 and global IPv6 addresses of the device with `ifindex` (no prefix), from one read. */
  async addrsOfIndexBoth(ifindex: number): Promise<string[]> {
    const out = (await this.runner.run(['ip', '-j', 'addr', 'show'], { netns: this.netns })).stdout;
    return [...parseIpv4AddrsOf(out, ifindex), ...parseIpv6AddrsOf(out, ifindex)];
  }

  /** Groups of both families joined on any device of the namespace, as iproute2 prints them. */
  async allGroups(): Promise<string[]> {
    return parseAllMaddrs((await this.runner.run(['ip', '-j', 'maddr', 'show'], { netns: this.netns })).stdout);
  }

  /** IPv4 groups joined on any device of the namespace (`ip -j maddr show`). */
  async allMaddrs(): Promise<string[]> {
    return parseIpv4Maddrs((await this.runner.run(['ip', '-j', 'maddr', 'show'], { netns: this.netns })).stdout);
  }

  // Named namespaces (`ip netns`): these act on the registry of names (/var/run/netns), so they
  // run in the caller's own namespace whatever this client's.

  /** The named network namespaces (`ip -j netns list`). */
  async netnsNames(): Promise<string[]> {
    return parseNetnsNames((await this.runner.run(['ip', '-j', 'netns', 'list'])).stdout);
  }

  /** Creates a named namespace (`ip netns add NAME`); throws when it cannot. */
  async addNetns(name: string): Promise<void> {
    await this.runner.run(['ip', 'netns', 'add', name]);
  }

  /** Deletes a named namespace (`ip netns del NAME`); resolves with the result whatever the exit code. */
  async deleteNetns(name: string): Promise<RunResult> {
    return await this.runner.run(['ip', 'netns', 'del', name], { allowFail: true });
  }

  /** Pids of the processes in a named namespace (`ip netns pids NAME`); empty when it cannot be read. */
  async netnsPids(name: string): Promise<number[]> {
    const r = await this.runner.run(['ip', 'netns', 'pids', name], { allowFail: true }).catch(() => undefined);
    return r ? parsePids(r.stdout) : [];
  }

  /** Deletes a link (`ip link del dev NAME`); resolves with the result whatever the exit code. */
  async deleteLink(name: string, opts: ProbeOptions = {}): Promise<RunResult> {
    return await this.runner.run(['ip', 'link', 'del', 'dev', name], { netns: this.netns, allowFail: true, ...opts });
  }

  /** Probe: creates a VXLAN link that is never brought up (proves the module and the capability). */
  async probeVxlan(name: string, vni: string, port: string, opts: ProbeOptions = {}): Promise<RunResult> {
    const argv = ['ip', 'link', 'add', name, 'type', 'vxlan', 'id', vni, 'dstport', port, 'nolearning'];
    return await this.runner.run(argv, { netns: this.netns, allowFail: true, ...opts });
  }

  /** Probe: `ip -V`, raw (the version is in stdout). */
  async versionOutput(opts: ProbeOptions = {}): Promise<RunResult> {
    return await this.runner.run(['ip', '-V'], { allowFail: true, ...opts });
  }

  /** Probe: the IPv4 default routes, raw `ip -j -4 route show default`. */
  async defaultRoutes4Output(opts: ProbeOptions = {}): Promise<RunResult> {
    return await this.runner.run(['ip', '-j', '-4', 'route', 'show', 'default'], { netns: this.netns, allowFail: true, ...opts });
  }

  /** Probe: a link with its details and addresses, raw `ip -j -d addr show dev NAME`. */
  async addrDetailsOutput(dev: string, opts: ProbeOptions = {}): Promise<RunResult> {
    return await this.runner.run(['ip', '-j', '-d', 'addr', 'show', 'dev', dev], { netns: this.netns, allowFail: true, ...opts });
  }
}
