/**
 * The gateway runtime of a node agent (`kmcast node --gateway-interface IF ...`): one domain, one
 * outside interface. The node agent owns the passes and the control socket; this class owns what
 * is the gateway's: the outside interface's address, the election among the domain's gateways,
 * the `netdev kmcast-gw` table (src/gateway/nft.ts), the joins on the interface
 * (src/gateway/joiner.ts) and the per-group counters.
 */
import { ConfigError, KmcastError, errorMessage } from '../errors.js';
import type { IpClient } from '../kernel/ip.js';
import { NftClient } from '../kernel/nft.js';
import type { Logger } from '../log.js';
import { PeerTable } from '../membership/peers.js';
import { isRoutableGroup, sortGroups } from '../net/groups.js';
import type { GatewayConfig } from './config.js';
import type { ElectionResult } from './election.js';
import { elect } from './election.js';
import { carriesIn, carriesOut, chooseJoins, familyOfGroup, isSingle } from './groups.js';
import { GroupJoiner } from './joiner.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayPlane, GatewayReadBack, GroupCount } from './nft.js';
import { GATEWAY_TABLE, gatewayDevices, gatewayMismatch, parseGateway, removeGatewayScript, renderGateway } from './nft.js';
import type { GatewayStatus, GatewayTraffic } from './status-types.js';
import type { Totals } from './traffic.js';
import { addCounts, addTotals, carry, dropTotals, trafficRows } from './traffic.js';

/** The control label gateways of a domain elect on (docs/protocol.md). */
export function gatewayLabel(domainLabel: string): string {
  return domainLabel.replace(/^node:/, 'gw:');
}

export interface GatewayDeps {
  readonly ip: IpClient;
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly now?: () => number;
}

/** What the node agent knows of the domain at a pass. */
export interface DomainView {
  readonly vni: number;
  readonly device: string;
  /** The far end of the domain's delivery hop (src/node/delivery.ts): what remote members sent. */
  readonly delivery: string;
  /** Host veths the node table delivers the domain to. */
  readonly members: readonly string[];
  /** Every pod IP of the domain (DNS). */
  readonly pods: readonly string[];
  /** Every IPv6 address of the domain's pods: DNS AAAA and what the local members have on eth0. */
  readonly pods6?: readonly string[];
  /** On an IPv6 underlay: the longest IP packet the domain's VXLAN device carries (src/node/underlay.ts). */
  readonly carried?: number;
  /** Routable groups joined by any member, on any node: group -> members (local) and nodes (remote) that joined it. */
  readonly demanded: ReadonlyMap<string, number>;
}

/** Groups wanted but not joined, listed in /status up to this many. */
export const MAX_UNJOINED_SHOWN = 32;

export class Gateway {
  /** The other gateways of the domain (their node IP; overlay = LAN address, mac = LAN MAC). */
  private table: PeerTable = new PeerTable({ selfIp: '0.0.0.0', expiryMs: 1 });
  private readonly joiner: GroupJoiner;
  /** nft in the namespace of deps.ip. */
  private readonly nft: NftClient;
  private readonly now: () => number;
  private lanIp = '';
  private lanIp6: string | undefined;
  private lanMac = '';
  private lanIndex = 0;
  private settledAt = Infinity;
  private election: ElectionResult = { active: false, activeGateway: undefined, reason: 'settling' };
  private installed: string | undefined;
  private ok = false;
  private error: string | undefined;
  /** Counters of tables this process replaced (a replace starts the kernel's at zero). */
  private readonly carried: Totals = new Map();
  /** Named drop counters of replaced tables. */
  private readonly carriedDrops = new Map<string, GroupCount>();
  private lastBack: GatewayReadBack | undefined;
  /** Inbound groups members want that are not joined (over --gateway-max-joins). */
  private unjoined: string[] = [];
  /** Configured single inbound and outbound groups: their carried counters are kept per group. */
  private readonly singles: ReadonlySet<string>;

  constructor(
    readonly config: GatewayConfig,
    private readonly deps: GatewayDeps,
  ) {
    this.nft = new NftClient(deps.ip.runner, deps.ip.netns);
    this.joiner = new GroupJoiner(deps.log);
    this.now = deps.now ?? Date.now;
    this.singles = new Set(config.groups.filter(isSingle).map((g) => g.base));
  }

  /** IPv6 groups are configured: the interface needs a global IPv6 address, the domain's AAAA records are read. */
  get hasIpv6(): boolean {
    return this.config.groups.some((g) => familyOfGroup(g) === 6);
  }

  /** IPv4 groups are configured: the interface needs an IPv4 address (a node on an IPv6 underlay may have none). */
  get hasIpv4(): boolean {
    return this.config.groups.some((g) => familyOfGroup(g) === 4);
  }

  /** Folds a table about to be replaced into the carried totals (bounded, see traffic.ts). */
  private fold(back: GatewayReadBack | undefined): void {
    carry(this.carried, back, this.singles);
    if (back) addCounts(this.carriedDrops, back.drops);
  }

  get address(): string {
    return this.lanIp;
  }

  /**
   * What a gateway STATE carries instead of an overlay address and MAC: the interface's IPv4
   * address, or its IPv6 one when it has none (IPv6 groups only, on an IPv6 underlay). The other
   * gateways add it to their loop guard (`gw-addrs`, `gw-addrs6`).
   */
  get localState(): { mac: string; overlay: string } {
    return { mac: this.lanMac, overlay: this.lanIp || this.lanIp6 || '0.0.0.0' };
  }

  get isActive(): boolean {
    return this.election.active;
  }

  /**
   * Reads the outside interface (exit 2 when it is missing or lacks the address its groups'
   * family needs). `table` is the domain's gateway table (the node agent feeds it from the
   * control socket).
   */
  async start(selfIp: string, table: PeerTable, settleMs: number): Promise<void> {
    this.adopt(await this.readInterface());
    this.table = table;
    this.settledAt = this.now() + settleMs;
    this.reelect(selfIp);
    this.deps.log.info(
      {
        interface: this.config.interface,
        address: this.lanIp,
        ...(this.lanIp6 ? { address6: this.lanIp6 } : {}),
        groups: this.config.groups.map((g) => `${g.prefix}=${g.direction}`),
        snat: this.config.snat,
      },
      'gateway configured',
    );
  }

  /**
   * The interface's first IPv4 address ('' when it has none and no IPv4 group is configured),
   * MAC and ifindex, and (with IPv6 groups) its first global IPv6 address; a ConfigError naming
   * the flag when the address a family of groups needs is missing.
   */
  private async readInterface(): Promise<{ ip: string; ip6: string | undefined; mac: string; index: number }> {
    const dev = this.config.interface;
    const flag = { fields: { flag: '--gateway-interface' } };
    const link = await this.deps.ip.link(dev);
    if (!link) throw new ConfigError(`--gateway-interface: ${dev} does not exist on this node`, flag);
    const [addr] = await this.deps.ip.addrs(dev);
    if (!addr && this.hasIpv4) {
      const four = this.config.groups.filter((g) => familyOfGroup(g) === 4).map((g) => g.prefix);
      throw new ConfigError(
        `--gateway-interface: ${dev} has no IPv4 address; the gateway joins its IPv4 groups (${four.join(', ')}) and sends them from it (a node without IPv4, on an IPv6-only cluster, carries IPv6 groups only: drop the IPv4 ones from --gateway-group)`,
        flag,
      );
    }
    if (!link.mac) throw new ConfigError(`--gateway-interface: ${dev} has no MAC address (not an Ethernet interface)`, flag);
    let ip6: string | undefined;
    if (this.hasIpv6) {
      ip6 = (await this.deps.ip.addrs6(dev))[0]?.split('/')[0];
      if (!ip6) throw new ConfigError(`--gateway-interface: ${dev} has no global IPv6 address; the gateway's IPv6 groups are joined on it and sent from it`, flag);
    }
    return { ip: addr?.split('/')[0] ?? '', ip6, mac: link.mac.toLowerCase(), index: link.ifindex };
  }

  private adopt(lan: { ip: string; ip6: string | undefined; mac: string; index: number }): void {
    if (this.lanIp && (lan.ip !== this.lanIp || lan.ip6 !== this.lanIp6 || lan.mac !== this.lanMac)) {
      this.deps.log.warn(
        { interface: this.config.interface, was: this.lanIp, now: lan.ip, ...(lan.ip6 !== this.lanIp6 ? { was6: this.lanIp6, now6: lan.ip6 } : {}), mac: lan.mac },
        'gateway interface changed its address; rejoining and sending from the new one',
      );
    }
    this.lanIp = lan.ip;
    this.lanIp6 = lan.ip6;
    this.lanMac = lan.mac;
    this.lanIndex = lan.index;
  }

  /** Re-runs the election; true when this gateway's role changed. */
  reelect(selfIp: string): boolean {
    const next = elect({ self: selfIp, others: this.table.alive().map((p) => p.ip), now: this.now(), settledAt: this.settledAt });
    const changed = next.active !== this.election.active || next.activeGateway !== this.election.activeGateway;
    if (changed) this.deps.log.info({ active: next.active, activeGateway: next.activeGateway, reason: next.reason }, next.active ? 'gateway active' : 'gateway standby');
    this.election = next;
    this.deps.metrics.active.labels(this.config.service).set(next.active ? 1 : 0);
    return changed;
  }

  /**
   * While active with outbound groups: the routable ones, which the domain must replicate to this
   * node (announced in its STATE; link-local groups reach every announcing node anyway).
   * Undefined when this gateway needs no copies (standby, or inbound only).
   */
  announcedGroups(): string[] | undefined {
    if (!this.election.active || !this.config.groups.some(carriesOut)) return undefined;
    return this.config.groups.filter((g) => carriesOut(g) && isRoutableGroup(g.base)).map((g) => g.base);
  }

  private plane(view: DomainView): GatewayPlane {
    const others = this.table.alive();
    // On an IPv6-only cluster the domain's pods are its AAAA records: they guard the IPv6 family.
    const pods4 = view.pods.filter((a) => !a.includes(':'));
    const pods6 = [...(view.pods6 ?? []), ...view.pods.filter((a) => a.includes(':'))];
    return {
      vni: view.vni,
      device: view.device,
      delivery: view.delivery,
      lan: this.config.interface,
      lanIp: this.lanIp,
      lanMac: this.lanMac,
      ...(this.lanIp6 ? { lanIp6: this.lanIp6 } : {}),
      members: view.members,
      pods: pods4,
      ...(this.hasIpv6 ? { pods6: sortGroups(pods6) } : {}),
      otherGatewayIps: others.map((p) => p.overlayAddr).filter((a) => a && a !== '0.0.0.0' && a !== '::'),
      otherGatewayMacs: others.map((p) => p.mac).filter((m) => /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m) && m !== '00:00:00:00:00:00'),
      groups: this.config.groups,
      snat: this.config.snat,
      minTtl: this.config.minTtl,
      rate: this.config.rate,
      rateTotal: this.config.rateTotal,
      active: this.election.active,
      ...(view.carried !== undefined ? { carried: view.carried } : {}),
    };
  }

  /** The ifindex of every device the plane names (one link read): a recreated one differs. */
  private async fingerprint(p: GatewayPlane): Promise<string> {
    const index = new Map((await this.deps.ip.links({ all: true })).map((l) => [l.name, l.ifindex]));
    return gatewayDevices(p)
      .map((n) => `${n}=${index.get(n) ?? 'none'}`)
      .join(',');
  }

  get isInstalled(): boolean {
    return this.ok;
  }

  async read(): Promise<GatewayReadBack | undefined> {
    const r = await this.nft.listTable('netdev', GATEWAY_TABLE, { json: true });
    return r.code === 0 ? parseGateway(r.stdout) : undefined;
  }

  /**
   * Installs the table when the script or a device it names changed, or the read-back differs;
   * then the joins. A replace folds the kernel's counters into the carried totals first.
   */
  async sync(view: DomainView): Promise<void> {
    // The interface is read at every full pass: a new address (DHCP) moves the joins and the SNAT
    // source; a vanished one stops the forwarding (the table keeps no chain) until it is back.
    const lan = await this.readInterface().catch((err: unknown) => err as Error);
    if (lan instanceof Error) {
      this.joiner.leaveAll();
      this.fold(await this.read());
      await this.nft.apply(renderGateway({ ...this.plane(view), active: false })).catch(() => undefined);
      this.installed = undefined;
      this.ok = false;
      this.error = lan.message;
      throw new KmcastError(`gateway: ${lan.message}; not forwarding until it is back`, { cause: lan });
    }
    this.adopt(lan);
    const p = this.plane(view);
    const script = renderGateway(p);
    const key = `${script}\n${await this.fingerprint(p)}`;
    const back = await this.read();
    const mismatch = gatewayMismatch(p, back);
    if (key !== this.installed || mismatch !== undefined) {
      this.fold(back);
      this.deps.log.info({ reason: this.installed === undefined ? 'start' : (mismatch ?? 'changed'), active: p.active }, 'installing gateway table');
      try {
        await this.nft.apply(script);
      } catch (err) {
        this.ok = false;
        this.installed = undefined;
        this.error = errorMessage(err);
        throw new KmcastError(`install gateway table: ${this.error}`, { cause: err });
      }
      const after = await this.read();
      const bad = gatewayMismatch(p, after);
      if (bad !== undefined) {
        this.ok = false;
        this.installed = undefined;
        this.error = `read back: ${bad}`;
        throw new KmcastError(`verify gateway table: ${bad}`);
      }
      this.installed = key;
      this.lastBack = after;
    } else this.lastBack = back;
    this.ok = true;
    this.error = undefined;
    await this.syncJoins(view.demanded);
  }

  /** Joins the inbound groups members asked for (all of them leave while standby). */
  async syncJoins(demanded: ReadonlyMap<string, number>): Promise<void> {
    if (!this.election.active || !this.config.groups.some(carriesIn)) {
      this.unjoined = [];
      await this.joiner.sync(this.lanIp, [], this.config.interface);
    } else {
      const choice = chooseJoins(this.config.groups, demanded, new Set(this.joiner.joined), this.config.maxJoins);
      if (choice.unjoined.length && choice.unjoined.join() !== this.unjoined.join()) {
        this.deps.log.warn(
          { wanted: choice.join.length + choice.unjoined.length, max: this.config.maxJoins, unjoined: choice.unjoined.slice(0, MAX_UNJOINED_SHOWN) },
          'gateway: members want more inbound groups than --gateway-max-joins; the rest are not joined',
        );
      }
      this.unjoined = choice.unjoined;
      await this.joiner.sync(this.lanIp, choice.join, this.config.interface);
    }
    this.deps.metrics.joined.labels(this.config.service).set(this.joiner.joined.length);
    this.deps.metrics.unjoined.labels(this.config.service).set(this.unjoined.length);
  }

  /** Per group and direction: kernel counters plus those of replaced tables, bounded rows. */
  traffic(back: GatewayReadBack | undefined = this.lastBack): GatewayTraffic[] {
    const totals: Totals = new Map();
    addTotals(totals, this.carried);
    if (back) addTotals(totals, back.counters);
    return trafficRows(totals);
  }

  /** Every drop by direction and reason (named counters: complete even when a set was full). */
  drops(back: GatewayReadBack | undefined = this.lastBack): { in: Record<string, number>; out: Record<string, number> } {
    const all = new Map(this.carriedDrops);
    if (back) addCounts(all, back.drops);
    return dropTotals(all);
  }

  /** Reads the counters (for a scrape) and sets the metrics. */
  async refresh(): Promise<void> {
    const back = await this.read().catch(() => undefined);
    if (back) this.lastBack = back;
    this.deps.metrics.setTraffic(this.config.service, this.traffic(), this.drops());
  }

  status(): GatewayStatus {
    const addresses = new Map(this.table.alive().map((p) => [p.ip, p.overlayAddr]));
    return {
      service: this.config.service,
      interface: this.config.interface,
      address: this.lanIp,
      ...(this.lanIp6 ? { address6: this.lanIp6 } : {}),
      mac: this.lanMac,
      ifindex: this.lanIndex,
      active: this.election.active,
      ...(this.election.activeGateway ? { activeGateway: this.election.activeGateway } : {}),
      role: this.election.reason,
      snat: this.config.snat,
      minTtl: this.config.minTtl,
      rate: this.config.rate,
      rateTotal: this.config.rateTotal,
      groups: this.config.groups.map((g) => ({ prefix: g.prefix, direction: g.direction })),
      joined: this.joiner.joined,
      joinFailures: this.joiner.failures,
      unjoined: { count: this.unjoined.length, groups: this.unjoined.slice(0, MAX_UNJOINED_SHOWN), max: this.config.maxJoins },
      // Listed node agents that never sent a gateway STATE are not gateways.
      gateways: this.table
        .status()
        .filter((p) => p.state !== 'pending')
        .map((p) => {
          const address = addresses.get(p.ip);
          return { ip: p.ip, state: p.state, ...(address ? { address } : {}) };
        }),
      table: { installed: this.ok, ...(this.error ? { lastError: this.error } : {}) },
      traffic: this.traffic(),
      drops: this.drops(),
    };
  }

  /**
   * Shutdown: leave every group and remove the table, so a standby gateway can take over without
   * two forwarding at once (the node table and the domain's own traffic are not touched).
   */
  async stop(): Promise<void> {
    this.joiner.leaveAll();
    this.election = { active: false, activeGateway: undefined, reason: 'settling' };
    this.deps.metrics.active.labels(this.config.service).set(0);
    await this.nft.apply(removeGatewayScript(), { allowFail: true });
  }
}
