/**
 * `kmcast node`: one agent per node, in the node's network namespace, never inside pods.
 *
 * Per domain (--service): a VXLAN device `kmcvx<vni>` (no address, no routes: src/overlay with
 * `bare`), its flood/MDB entries from the other node agents' STATE, and the nftables chains of
 * src/node/nft.ts that take member pods' multicast off their host veths and deliver decapsulated
 * frames out of them. The local members come from DNS (the Service's A records) filtered by the
 * route to each IP (src/node/members.ts); their joins are read from their own namespaces.
 *
 * This file is the wiring and the pass scheduler; each job is its own module: members.ts and
 * routes.ts (pod IP -> host veth), joins.ts (member joins, read in their namespaces), ruleset.ts (the nft
 * table: desired, fingerprint, apply, read-back), domain.ts (per-domain state and decisions),
 * control.ts (STATE/LEAVE), http.ts (status and metrics).
 *
 * Passes, coalesced, in three lanes of one queue (runtime/pass-queue.ts), one pass at a time per
 * lane, so an event never waits behind the periodic full pass:
 * - full lane: `full`: members, the joins of new members, devices (full read-and-diff), ruleset
 *   (read back, replaced when it differs or a device it names was recreated), allow-list,
 *   monitors, announcements; `joins-all`: re-read every member's joins (periodic, or after lost
 *   events) and announce;
 * - joins lane: `joins`: re-read the namespaces with maddress events and announce a changed set
 *   (of a domain already announced: its first announcement is the full pass's, made after it
 *   read its new members' joins);
 * - entries lane: `entries`: only the FDB/MDB delta after a peer changed (the reconciler's fast
 *   path).
 * What two lanes share is serialised by KeyedLock: a domain's device and entries, the gateway;
 * a member's joins read by two lanes at once keep the newer read (joins.ts).
 */
import type { Server } from 'node:http';
import { CapabilityError, ConfigError, KmcastError, errorMessage } from '../errors.js';
import { IP_MONITOR, IpClient } from '../kernel/ip.js';
import { NftClient } from '../kernel/nft.js';
import type { Monitors, MonitorHandle } from '../kernel/monitor.js';
import { ExecMonitors } from '../kernel/monitor.js';
import type { Runner } from '../kernel/runner.js';
import type { Logger } from '../log.js';
import { DnsDiscovery, ignoredDnsRecords } from '../discovery/dns.js';
import { watchKeyFile } from '../membership/keys.js';
import type { KeyFileWatcher } from '../membership/keys.js';
import { ExpiryClock, expireTickMs, peerTableTiming } from '../membership/expiry.js';
import { PeerTable } from '../membership/peers.js';
import { AllowList, allowListDrops } from '../overlay/allowlist.js';
import { blackholeFor, desiredState, hostRouteDst } from '../overlay/desired.js';
import { OverlayReconciler } from '../overlay/reconciler.js';
import { VERSION } from '../version.js';
import { Gateway, gatewayLabel } from '../gateway/gateway.js';
import { GatewayMetrics } from '../gateway/metrics.js';
import { removeGatewayScript } from '../gateway/nft.js';
import type { PeerNodesStatus, PodProgramStatus } from './api.js';
import type { NodeConfig } from './config.js';
import { checkKeyPolicy, nodeClusterLabel } from './config.js';
import { DomainAnnouncements } from './announce.js';
import { expirePeerNodes, resolveDomains } from './peer-nodes.js';
import { NodeControl } from './control.js';
import type { DomainRuntime } from './domain.js';
import type { PeerNodesReadiness } from './domain.js';
import { assignMembers, domainStatus, isProgrammed, demandByGroup, listedPodStatus, peerEntryKey, peerNodesReadiness, peerNodesStatus, peerWaitBound } from './domain.js';
import type { NodeHttpSources } from './http.js';
import { startNodeHttp } from './http.js';
import { PodLookup } from './pod-lookup.js';
import { PodMtuRoutes } from './pod-routes.js';
import { MemberJoins } from './joins.js';
import type { LocalMember } from './members.js';
import { MemberBindings, MemberResolver, resolveListed, sharedClaims } from './members.js';
import { NodeMetrics } from './metrics.js';
import { KeyedLock } from '../runtime/keyed-lock.js';
import { PassQueue } from '../runtime/pass-queue.js';
import { CAP_NET_BROADCAST, holdsCapability } from '../runtime/caps.js';
import type { ChainSpec, ReadChain } from './nft.js';
import { deliveryDevices, deliveryNames, ensureDelivery, removeDelivery } from './delivery.js';
import { captureChainName, deliveryChainName, desiredChains, ipv4SourceOf } from './nft.js';
import { NodeRuleset } from './ruleset.js';
import type { NodeDomainStatus, NodeStatus } from './status-types.js';
import { detectUplink, familyOf } from './uplink.js';
import { carriedPacket, membersOverUnderlay, overlongBound } from './underlay.js';

export interface NodeAgentDeps {
  readonly runner: Runner;
  readonly log: Logger;
  readonly monitors?: Monitors;
  /** Watch joins with one all-nsid listener; default: whether this process holds CAP_NET_BROADCAST. */
  readonly allNsid?: boolean;
}

export type NodePassKind = 'full' | 'joins-all' | 'joins' | 'entries';
type PassKind = NodePassKind;

/**
 * The node agent's pass queue: full and joins-all in one lane, joins and entries each in its own,
 * every failure retried as a full pass with the one back-off.
 */
export function nodePassQueue(
  run: (kind: PassKind) => Promise<void>,
  onError: (kind: PassKind, err: unknown, retryInMs: number) => void,
  backoff?: { initialMs: number; maxMs: number },
): PassQueue<PassKind> {
  return new PassQueue<PassKind>({
    kinds: ['full', 'joins-all', 'joins', 'entries'],
    lane: (k) => (k === 'joins-all' ? 'full' : k),
    delayMs: (k) => (k === 'full' ? 50 : 0),
    run,
    onError,
    retryKind: 'full',
    paused: true,
    ...(backoff ? { backoff } : {}),
  });
}

/** /v1/pods/<ip> of an IP no domain lists: at most one lookup batch per this (ms). */
export const POD_LOOKUP_INTERVAL_MS = 1000;

export class NodeAgent {
  readonly metrics = new NodeMetrics();
  private readonly ip: IpClient;
  private readonly monitors: Monitors;
  private readonly log: Logger;
  private readonly domains: DomainRuntime[];
  private control: NodeControl | undefined;
  private allowList: AllowList;
  private peersDns: DnsDiscovery | undefined;
  private http: Server | undefined;
  private statusHttp: Server | undefined;
  /** /v1/pods/<ip> for IPs no domain lists: at most one lookup batch per interval. */
  private readonly podLookup: PodLookup;
  /** IPv6 underlay: the multicast route MTU of member pods whose MTU is over what it carries. */
  private readonly podRoutes: PodMtuRoutes;
  private keys: Buffer[] = [];
  private keyWatcher: KeyFileWatcher | undefined;
  private uplink = '';
  private nodeIp = '';
  private uplinkMtu = 1500;
  private timers: NodeJS.Timeout[] = [];
  private nodeMonitor: MonitorHandle | undefined;
  /** The members' joins: watched (one watch, the sidecar's too) and read into their domains. */
  private readonly joins: MemberJoins;
  /** Serialises what two pass lanes share: `domain:<label>` (device and entries), `gateway`. */
  private readonly locks = new KeyedLock();
  /** Member IP -> the veth it was first found on (a second claimant is refused). */
  private readonly bindings = new MemberBindings();
  private readonly ruleset: NodeRuleset;
  /** The data-plane passes: one at a time, coalesced, retried with back-off (the sidecar's queue). */
  private readonly passes: PassQueue<PassKind>;
  private stopped = false;
  private ready = false;
  private graceUntil = 0;
  private peersReadyBy = 0;
  /** The first full pass (members, joins, announcements) is over: "no members here" is true. */
  private firstPassDone = false;
  private allowListOk = false;
  private allowListPeers = 0;
  /** STATE and LEAVE of each domain to its peer nodes. */
  private readonly announcements: DomainAnnouncements;
  private allowListDropped: Record<string, number> = {};
  /** This node's gateway to the outside network (--gateway-interface), if any. */
  private readonly gateway: Gateway | undefined;
  /** With IPv6 gateway groups: the IPv6 addresses of the gateway domain's pods (its AAAA records). */
  private gatewayPods6: string[] = [];

  constructor(
    private readonly config: NodeConfig,
    deps: NodeAgentDeps,
  ) {
    this.log = deps.log;
    this.ip = new IpClient(deps.runner);
    this.monitors = deps.monitors ?? new ExecMonitors();
    this.allowList = new AllowList(deps.runner);
    const allNsid = deps.allNsid ?? holdsCapability(CAP_NET_BROADCAST);
    this.joins = new MemberJoins({
      runner: deps.runner,
      monitors: this.monitors,
      log: deps.log,
      allNsid,
      onEvents: () => this.request('joins'),
      onResync: () => this.request('joins-all'),
      resyncMs: config.joinsMs,
      counted: { read: (cause) => this.metrics.joinReads.labels(cause).inc(), lost: () => this.metrics.joinEventsLost.inc() },
    });
    if (!allNsid)
      this.log.warn(
        { capability: 'NET_BROADCAST' },
        'no CAP_NET_BROADCAST: joins are watched with one ip monitor process per member pod (about 3 MB each); add NET_BROADCAST to the node agent for one listener',
      );
    this.passes = nodePassQueue(
      async (k) => await this.runPass(k),
      (k, err, retryInMs) => this.log.error({ pass: k, err: errorMessage(err), retryInMs }, 'data plane pass failed; retrying'),
    );
    this.ruleset = new NodeRuleset({ ip: this.ip, log: deps.log, metrics: this.metrics, retrySoon: () => setTimeout(() => this.request('full'), 200).unref() });
    const expiryMs = config.peerExpiry * config.heartbeatMs;
    this.domains = config.domains.map((domain) => ({
      domain,
      label: nodeClusterLabel(domain),
      table: new PeerTable({ selfIp: config.nodeIp ?? '0.0.0.0', ...peerTableTiming(config) }),
      gwLabel: gatewayLabel(nodeClusterLabel(domain)),
      gateways: new PeerTable({ selfIp: config.nodeIp ?? '0.0.0.0', expiryMs }),
      reconciler: new OverlayReconciler(this.ip, deps.log.child({ domain: domain.service })),
      // Members by A records, or by AAAA ones on an IPv6-only cluster (a Service with no A record).
      dns: new DnsDiscovery(domain.service, { server: config.dnsServer, family: 'auto', onIgnored: (name, ignored) => ignoredDnsRecords(this.log, name, ignored) }),
      spec: undefined,
      listed: [],
      local: new Map(),
      reasons: new Map(),
      refused: new Map(),
      groups: new Map(),
      ipv6: new Map(),
      announced: false,
      announcedGroups: '',
      deviceOk: false,
      entries: { fdb: 0, mdb: 0 },
      expiry: new ExpiryClock(),
      programmedPeers: new Set<string>(),
    }));
    this.announcements = new DomainAnnouncements({
      channel: () => this.control,
      gatewayGroups: (d) => (this.gatewayDomain?.label === d.label ? this.gateway?.announcedGroups() : undefined),
      log: deps.log,
      onCapped: (service, dropped) => this.metrics.unannouncedGroups.labels(service).set(dropped),
    });
    const gw = config.gateway;
    const gwDomain = gw && this.domains.find((d) => d.domain.service === gw.service);
    this.podRoutes = new PodMtuRoutes((ns) => new IpClient(this.runner, ns), this.log.child({ component: 'pod-routes' }));
    this.podLookup = new PodLookup(async (ips) => await this.lookupPods(ips), { intervalMs: POD_LOOKUP_INTERVAL_MS });
    this.gateway = gw && gwDomain ? new Gateway(gw, { ip: this.ip, log: deps.log.child({ gateway: gw.interface }), metrics: new GatewayMetrics(this.metrics.registry) }) : undefined;
  }

  /** The domain the gateway serves (undefined without a gateway). */
  private get gatewayDomain(): DomainRuntime | undefined {
    return this.gateway && this.domains.find((d) => d.domain.service === this.gateway!.config.service);
  }

  private get runner(): Runner {
    return this.ip.runner;
  }

  /** /readyz: the data plane installed and read back, and every domain with local members has its peer nodes ready. */
  get isReady(): boolean {
    const now = Date.now();
    return this.ready && this.domains.every((d) => d.local.size === 0 || this.peerReadiness(d, now).ready);
  }

  private peerReadiness(d: DomainRuntime, now: number): PeerNodesReadiness {
    return peerNodesReadiness(d, now, peerWaitBound(this.peersReadyBy, d.announcedAt, now, this.config.peerExpiry * this.config.heartbeatMs));
  }

  private peerNodes(d: DomainRuntime, now: number): { readiness: PeerNodesReadiness; status: PeerNodesStatus } {
    const readiness = this.peerReadiness(d, now);
    return { readiness, status: peerNodesStatus(readiness, now, this.config.peerExpiry * this.config.heartbeatMs) };
  }

  async start(): Promise<void> {
    const cfg = this.config;
    checkKeyPolicy(cfg);
    await this.checkTools();
    if (cfg.keyFile) this.keys = await this.watchKeyFile(cfg.keyFile);
    else {
      this.log.warn(
        { flag: '--insecure-no-key' },
        "INSECURE: running without --key-file: control messages are not authenticated; any sender with a listed node's source address (a pod masqueraded to its node's IP, too) can replace this node's view of a domain's groups",
      );
    }
    await this.detectUplink();
    const family = familyOf(this.nodeIp);
    const foreign = cfg.peers.filter((p) => familyOf(p) !== family);
    if (foreign.length) {
      throw new ConfigError(
        `--peers: ${foreign.join(', ')} ${foreign.length > 1 ? 'are' : 'is'} not IPv${family} like this node's address ${this.nodeIp}: the underlay is one family (a VXLAN device sends in its local address's); give every node's IPv${family} address`,
      );
    }
    if (family === 6) this.allowList = new AllowList(this.runner, undefined, 'ip6');
    const expiryMs = cfg.peerExpiry * cfg.heartbeatMs;
    // PeerTable needs the node IP as "self"; it is known only now.
    for (const d of this.domains) {
      // The same expiry rule as the sidecar's (membership/expiry.ts): a peer node still listed is
      // suspect before it is removed, and time this agent was not scheduled is nobody's silence.
      d.table = new PeerTable({ selfIp: this.nodeIp, ...peerTableTiming(cfg) });
      d.table.setListed(
        'static',
        cfg.peers.filter((p) => p !== this.nodeIp),
      );
      d.gateways = new PeerTable({ selfIp: this.nodeIp, expiryMs });
      d.gateways.setListed(
        'static',
        cfg.peers.filter((p) => p !== this.nodeIp),
      );
      d.spec = {
        device: d.domain.device,
        vni: d.domain.vni,
        port: cfg.vxlanPort,
        underlay: this.uplink,
        underlayMtu: this.uplinkMtu,
        localIp: this.nodeIp,
        unregistered: cfg.unregistered,
        replication: 'selective',
        bare: true,
      };
    }
    // Adopting a populated device after a restart: keep what the previous agent programmed until
    // the peers have had one expiry to be heard from.
    this.graceUntil = Date.now() + expiryMs;
    // A member pod's app starts once the domain's peer nodes are heard, or after one expiry: a
    // live peer answers our first STATE at once and heartbeats every interval, so one that is
    // still silent after an expiry would be expired anyway (docs/node-mode.md, "Readiness").
    this.peersReadyBy = Date.now() + expiryMs;
    // The others answer a new gateway's first STATE at once; two heartbeats cover a lost answer.
    if (this.gateway) await this.gateway.start(this.nodeIp, this.gatewayDomain!.gateways, 2 * cfg.heartbeatMs + 100);
    const channels = this.domains.flatMap((d) => [
      { label: d.label, table: d.table },
      { label: d.gwLabel, table: d.gateways },
    ]);
    this.control = new NodeControl({ address: this.nodeIp, port: cfg.controlPort, keys: this.keys, domains: channels, logger: this.log });
    this.control.onMessage((e) => {
      const g = this.domains.find((x) => x.gwLabel === e.label);
      if (g) {
        this.onGatewayMessage(g, e.from, e.result.isNew, e.result.changed);
        return;
      }
      const d = this.domains.find((x) => x.label === e.label);
      if (!d) return;
      if (e.result.changed) this.request('entries');
      // A new or restarted peer node learns us at once; with no member here the answer is a
      // LEAVE, so its pods need not wait for the bounded wait to know this node has none. Not
      // before our first pass has read the members and their joins: a LEAVE then would say "no
      // members" for a node that has some, and the peer would start its pods before it knows
      // our groups (the first pass announces to every peer anyway).
      if (e.result.isNew || e.result.restarted) {
        if (d.announced) void this.announce(d, [e.from]);
        else if (e.msg.type === 'state' && this.firstPassDone) void this.control?.sendLeave(d.label, [e.from]);
      }
    });
    await this.control.start();
    if (cfg.peersService) this.peersDns = new DnsDiscovery(cfg.peersService, { server: cfg.dnsServer, family, onIgnored: (name, ignored) => ignoredDnsRecords(this.log, name, ignored) });
    await this.resolveAll();
    // The first pass runs in the pass queue (events from the control socket wait for it) but its
    // error ends the start: a missing capability or a bad device is exit 3 / 2, not a retry loop.
    await this.passes.runNow('full');
    this.firstPassDone = true;
    this.passes.resume();
    const sources: NodeHttpSources = {
      metrics: this.metrics,
      beforeScrape: async () => {
        await this.refreshCounters();
      },
      ready: () => this.isReady,
      status: async () => {
        await this.gateway?.refresh();
        await this.refreshAllowList();
        // The delivery chains' counters as they are now, not as of the last pass.
        return this.status(await this.ruleset.read().catch(() => undefined));
      },
      pod: async (ip) => await this.podStatus(ip),
    };
    // The wildcard of the underlay's family: on an IPv6 underlay pods ask the node's IPv6 address.
    const wildcard = (host: string): string => (family === 6 && (host === '' || host === '0.0.0.0') ? '::' : host);
    const listen = async (flag: string, at: { host: string; port: number }, access: 'open' | 'loopback' | 'none'): Promise<Server> =>
      await startNodeHttp(wildcard(at.host), at.port, sources, access).catch((err: unknown) => {
        throw new ConfigError(`${flag} ${at.host}:${at.port}: cannot listen: ${errorMessage(err)}`, { cause: err });
      });
    if (cfg.statusHttp) this.statusHttp = await listen('--status-http', cfg.statusHttp, 'open');
    if (cfg.http) this.http = await listen('--http', cfg.http, cfg.statusHttp ? 'none' : 'loopback');
    this.nodeMonitor = this.startNodeMonitor();
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      this.timers.push(t);
    };
    every(cfg.heartbeatMs, () => this.heartbeat());
    every(expireTickMs(cfg.heartbeatMs), () => this.expirePeers());
    every(cfg.resolveMs, () => {
      void this.resolveAll().then((changed) => {
        if (changed) this.request('full');
      });
    });
    every(cfg.resyncMs, () => this.request('full'));
    this.joins.start();
    setTimeout(() => this.request('entries'), expiryMs + 50).unref();
    if (this.domains.length === 0) {
      this.log.warn(
        { configMap: 'kmcast-node', key: 'services' },
        'no domain: the agent is idle (and ready); add a domain (NAME or NAME=VNI) to --service, in deploy/node the ConfigMap kmcast-node key services, then restart the agents (kubectl -n kmcast-node rollout restart daemonset/kmcast-node)',
      );
    }
    this.log.info(
      { nodeIp: this.nodeIp, uplink: this.uplink, domains: this.domains.map((d) => ({ service: d.domain.service, vni: d.domain.vni, device: d.domain.device, local: d.local.size })) },
      'node agent started',
    );
  }

  /**
   * SIGTERM: LEAVE for every announced domain, then exit. The devices, their entries, the ruleset
   * and the allow-list stay: the member pods keep sending to and receiving from each other on this
   * node, and a restarted agent adopts all of it (same names, read back, replaced only where it
   * differs), so a restart neither cuts local traffic nor duplicates anything.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.keyWatcher?.stop();
    for (const t of this.timers) clearInterval(t);
    this.nodeMonitor?.stop();
    this.joins.stop();
    await this.passes.stop();
    // The gateway first: its forwarding ends and its LEAVE lets a standby one take over at once.
    if (this.gateway) {
      await this.gateway.stop();
      const gd = this.gatewayDomain!;
      await this.control?.sendLeave(gd.gwLabel, gd.table.targets(), this.gateway.localState);
    }
    await this.announcements.leaveAll(this.domains);
    await this.control?.close();
    for (const server of [this.http, this.statusHttp]) await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    for (const d of this.domains) d.dns.cancel();
    this.peersDns?.cancel();
  }

  /** Removes everything the node agents install on this node (uninstall; not done on SIGTERM). */
  async teardown(): Promise<void> {
    await new NftClient(this.runner).apply(removeGatewayScript(), { allowFail: true });
    await this.ruleset.remove();
    await this.allowList.remove();
    await this.podRoutes.removeAll();
    for (const d of this.domains) {
      await d.reconciler.teardown(d.domain.device, undefined);
      await removeDelivery(this.ip, d.domain.vni);
    }
    // Either family's catch-all blackhole: teardown runs without knowing the underlay.
    const routes = await this.ip.routes();
    for (const blackhole of [blackholeFor('0.0.0.0'), blackholeFor('::')]) {
      if (routes.some((r) => r.type === 'blackhole' && hostRouteDst(r.dst) === blackhole)) {
        await this.ip.ipBatch([`route del blackhole ${blackhole}/${blackhole.includes(':') ? 128 : 32}`]);
      }
    }
  }

  private async checkTools(): Promise<void> {
    const r = await new NftClient(this.runner).version().catch((err: unknown) => ({ code: -1, stdout: '', stderr: errorMessage(err) }));
    if (r.code !== 0) {
      throw new CapabilityError('start node agent: the nft command is missing; install nftables (the node data plane is an nftables netdev table)');
    }
    const list = await new NftClient(this.runner).listTables();
    if (list.code !== 0 && /Operation not permitted|Permission denied/i.test(list.stderr)) {
      throw new CapabilityError('start node agent: nftables is not permitted; run the node agent with CAP_NET_ADMIN in the node network namespace (hostNetwork: true)');
    }
  }

  private async detectUplink(): Promise<void> {
    const u = await detectUplink(this.ip, { interface: this.config.interface, nodeIp: this.config.nodeIp });
    this.uplink = u.uplink;
    this.nodeIp = u.nodeIp;
    this.uplinkMtu = u.mtu;
  }

  /** Re-resolves every domain and the peers Service; true when a member list changed. */
  private async resolveAll(): Promise<boolean> {
    const changed = await resolveDomains(this.domains, this.peersDns, this.nodeIp, this.log);
    const gd = this.gatewayDomain;
    if (!this.gateway?.hasIpv6 || !gd) return changed;
    try {
      const pods6 = await gd.dns.resolve6();
      if (pods6.join() === this.gatewayPods6.join()) return changed;
      this.gatewayPods6 = pods6;
      return true;
    } catch (err) {
      this.log.warn({ domain: gd.domain.service, err: errorMessage(err) }, "resolve the gateway domain's AAAA records failed; keeping the last list");
      return changed;
    }
  }

  private heartbeat(): void {
    const now = Date.now();
    for (const d of this.domains) {
      if (d.announced) void this.announce(d, d.table.targets());
      const gone2 = d.gateways.expire(now);
      if (gone2.length) this.log.warn({ domain: d.domain.service, gateways: gone2 }, 'gateways expired');
    }
    if (this.gateway) {
      const gd = this.gatewayDomain!;
      void this.control?.sendState(gd.gwLabel, gd.table.targets(), [], this.gateway.localState);
      if (this.gateway.reelect(this.nodeIp)) this.request('full');
    }
  }

  /** The domains' peer nodes: the expiry rule's tick (a quarter heartbeat, see membership/expiry.ts). */
  private expirePeers(): void {
    if (expirePeerNodes(this.domains, Date.now(), this.log)) this.request('entries');
  }

  /** A gateway STATE or LEAVE: answer a new gateway at once; an election may have changed. */
  private onGatewayMessage(d: DomainRuntime, from: string, isNew: boolean, changed: boolean): void {
    const gw = this.gateway;
    if (!gw || this.gatewayDomain !== d) return;
    if (isNew) void this.control?.sendState(d.gwLabel, [from], [], gw.localState);
    if (gw.reelect(this.nodeIp) || changed) this.request('full');
  }

  /** STATE of `d` to `to`; never rejects. */
  private async announce(d: DomainRuntime, to: readonly string[]): Promise<void> {
    await this.announcements.announce(d, to);
  }

  /** Asks for a pass; passes are coalesced (a burst of events is one pass; runtime/pass-queue.ts). */
  request(kind: PassKind): void {
    if (this.stopped) return;
    this.passes.request(kind);
  }

  private async runPass(kind: PassKind): Promise<void> {
    if (kind === 'entries') {
      await this.syncEntries(true);
      await this.syncGatewayJoins();
      return;
    }
    if (kind === 'joins') {
      await this.joins.readDue(this.domains);
      await this.syncAnnouncements(true);
      await this.syncGatewayJoins();
      return;
    }
    if (kind === 'joins-all') {
      await this.joins.readAll(this.domains);
      await this.syncAnnouncements();
      await this.syncGatewayJoins();
      return;
    }
    try {
      await this.resolveMembers();
      // Before the chains: a member is programmed once its pod fragments to what crosses.
      await this.syncPodRoutes();
      // New members (or a pod re-created on the same IP) are read now; the others' joins follow
      // their events (the joins lane), and the periodic re-read (--joins-interval) repairs a lost one.
      await this.joins.readNew(this.domains);
      await this.syncEntries(false);
      await this.syncRuleset();
      await this.locks.run('gateway', async () => await this.syncGateway());
      await this.syncAllowList();
      this.syncMemberMonitors();
      await this.syncAnnouncements();
      this.ready = this.ruleset.isInstalled && this.domains.every((d) => d.deviceOk) && (this.gateway?.isInstalled ?? true);
      this.metrics.ready.set(this.isReady ? 1 : 0);
      this.metrics.syncs.labels('ok').inc();
    } catch (err) {
      this.metrics.syncs.labels('error').inc();
      throw err;
    }
  }

  private resolver(): MemberResolver {
    return new MemberResolver(this.ip, (ns) => new IpClient(this.runner, ns));
  }

  private async resolveMembers(): Promise<void> {
    // One resolver per pass: one route read, one nsid map, one scan per bridge for every domain.
    const resolver = this.resolver();
    const shared = sharedClaims(this.domains.map((d) => ({ service: d.domain.service, listed: d.listed })));
    for (const d of this.domains) {
      const changed = assignMembers(d, await resolveListed(resolver, d.listed, this.bindings), shared);
      if (changed.refusedChanged) {
        this.log.warn(
          { domain: d.domain.service, refused: [...d.refused.values()] },
          "member pods refused: listed by more than one domain (captured by none), or a second veth claims a member's IP (the first one kept)",
        );
      }
      if (changed.membersChanged) {
        this.log.info({ domain: d.domain.service, members: [...d.local.values()].map((m) => ({ ip: m.ip, veth: m.veth, netns: m.netns })) }, 'local members');
        const over = membersOverUnderlay([...d.local.values()], this.nodeIp, this.uplinkMtu);
        if (over.length) {
          this.log.warn(
            { domain: d.domain.service, members: over.map((m) => ({ ip: m.ip, mtu: m.mtu })), carried: carriedPacket(this.nodeIp, this.uplinkMtu) },
            'member pods have an MTU over what the IPv6 underlay carries (VXLAN over IPv6 adds 70 bytes and is never fragmented): their IPv6 multicast route gets the carried size as MTU, so their kernels fragment to fit; an app that fragments at the device MTU anyway (IPV6_PMTUDISC_OMIT) is counted as overlong',
          );
        }
      }
    }
    this.bindings.retain((ip) => this.domains.some((d) => d.listed.includes(ip)));
  }

  private async syncPodRoutes(): Promise<void> {
    const members = this.domains.flatMap((d) => [...d.local.values()]);
    await this.podRoutes.sync(members, overlongBound(this.nodeIp, this.uplinkMtu));
  }

  /**
   * Loads --key-file and re-reads it when it changes (a Secret update): rotation needs no
   * restart, in node and gateway mode as in the sidecar (one watcher, membership/keys.ts; one
   * rule for what may change, checkKeyChange).
   */
  private async watchKeyFile(path: string): Promise<Buffer[]> {
    const { watcher, keys } = await watchKeyFile(path, {
      apply: (next) => {
        this.keys = next;
        this.control?.setKeys(next);
      },
      reloads: this.metrics.keyReloads,
      log: this.log,
    });
    this.keyWatcher = watcher;
    return keys;
  }

  /** Every domain's FDB/MDB entries; a domain at a time, under its lock (the entries and full lanes share it). */
  private async syncEntries(fast: boolean): Promise<void> {
    for (const d of this.domains) await this.locks.run(`domain:${d.label}`, async () => await this.syncDomainEntries(d, fast));
  }

  private async syncDomainEntries(d: DomainRuntime, fast: boolean): Promise<void> {
    if (!d.spec) return;
    const peers = d.table.alive().map((p) => ({ ip: p.ip, groups: p.groups }));
    const desired = desiredState(d.spec, peers);
    try {
      const r = await d.reconciler.reconcile(desired, { prune: Date.now() >= this.graceUntil, fast });
      if (r.plan.recreate || r.plan.ip.some((l) => l.startsWith('link add'))) this.ruleset.markRebind();
      if (await ensureDelivery(this.ip, d.domain.vni)) {
        this.log.info({ domain: d.domain.service, devices: deliveryNames(deliveryDevices(d.domain.vni)) }, 'delivery hop (re)created');
        this.ruleset.markRebind();
        // A fast pass does not touch the ruleset: the chains must be reloaded onto the new hop.
        if (fast) this.request('full');
      }
      d.deviceOk = true;
      d.programmedPeers = new Set(peers.map((p) => peerEntryKey(p.ip, p.groups)));
      d.entries = { fdb: desired.fdb.length, mdb: desired.mdb.length };
      this.metrics.fdbEntries.labels(d.domain.service).set(desired.fdb.length);
      this.metrics.mdbEntries.labels(d.domain.service).set(desired.mdb.length);
    } catch (err) {
      d.deviceOk = false;
      const msg = errorMessage(err);
      if (/Operation not permitted/i.test(msg)) {
        throw new CapabilityError(`program ${d.domain.device}: not permitted; the node agent needs CAP_NET_ADMIN in the node network namespace`, { cause: err });
      }
      throw new KmcastError(`program ${d.domain.device} for ${d.domain.service}: ${msg}`, { cause: err });
    }
  }

  private wantedChains(): ChainSpec[] {
    const carried = overlongBound(this.nodeIp, this.uplinkMtu);
    return desiredChains(
      this.domains.map((d) => {
        const local = [...d.local.values()];
        const mtus = new Map(local.flatMap((m) => (m.mtu !== undefined ? [[m.veth, m.mtu] as const] : [])));
        // What a member's veth captures must come from the member's own IP; an IPv6-only member
        // (identified by its IPv6 address) has no IPv4 source at all.
        const sources = new Map(local.map((m) => [m.veth, ipv4SourceOf(m.ip)] as const));
        const sources6 = new Map(local.map((m) => [m.veth, [...(d.ipv6.get(m.ip) ?? []), ...(m.ip.includes(':') ? [m.ip] : [])]] as const));
        return { vni: d.domain.vni, device: d.domain.device, members: local.map((m) => m.veth), mtus, sources, sources6, ...(carried !== undefined ? { carried } : {}) };
      }),
    );
  }

  private async syncRuleset(): Promise<void> {
    await this.ruleset.sync(this.wantedChains());
  }

  /** Routable groups any member of the gateway's domain joined, on any node, with how many did. */
  private demandedGroups(): Map<string, number> {
    const d = this.gatewayDomain;
    return d ? demandByGroup(d) : new Map();
  }

  private async syncGateway(): Promise<void> {
    const d = this.gatewayDomain;
    if (!this.gateway || !d) return;
    const dl = this.wantedChains().find((c) => c.name === deliveryChainName(d.domain.vni));
    const pods6 = [...this.gatewayPods6, ...[...d.ipv6.values()].flat()];
    const carried = overlongBound(this.nodeIp, this.uplinkMtu);
    await this.gateway.sync({
      vni: d.domain.vni,
      device: d.domain.device,
      delivery: deliveryDevices(d.domain.vni).recv,
      members: dl?.dups ?? [],
      pods: d.listed,
      pods6,
      ...(carried !== undefined ? { carried } : {}),
      demanded: this.demandedGroups(),
    });
  }

  private async syncAllowList(): Promise<void> {
    const peers = new Set<string>();
    for (const d of this.domains) for (const p of d.table.targets()) peers.add(p);
    try {
      const state = await this.allowList.apply({
        vxlanPort: this.config.vxlanPort,
        controlPort: this.keys.length ? undefined : this.config.controlPort,
        peers: [...peers],
        // Pods (and a gateway's LAN) never reach the overlay or control port, masqueraded or not.
        guard: { underlay: this.uplink, ports: [this.config.vxlanPort, this.config.controlPort] },
      });
      this.allowListOk = true;
      this.allowListPeers = state.peers.length;
      this.allowListDropped = state.dropped;
    } catch (err) {
      this.allowListOk = false;
      throw err;
    }
  }

  private startNodeMonitor(): MonitorHandle {
    return this.monitors.start(IP_MONITOR.linkRoute, undefined, () => this.request('full'));
  }

  private syncMemberMonitors(): void {
    if (this.nodeMonitor && !this.nodeMonitor.running && !this.stopped) this.nodeMonitor = this.startNodeMonitor();
    this.joins.sync(this.domains);
  }

  /** The gateway's joins on its interface, under the gateway's lock (every lane calls it). */
  private async syncGatewayJoins(): Promise<void> {
    if (this.gateway) await this.locks.run('gateway', async () => await this.gateway?.syncJoins(this.demandedGroups()));
  }

  /** STATE or LEAVE where a domain's announcement changed (`changesOnly`: a joins pass; announce.ts). */
  private async syncAnnouncements(changesOnly = false): Promise<void> {
    await this.announcements.sync(this.domains, changesOnly);
  }

  private isProgrammed(d: DomainRuntime, m: LocalMember): boolean {
    return isProgrammed(d, m, (name) => this.ruleset.chain(name));
  }

  async podStatus(podIp: string): Promise<PodProgramStatus | undefined> {
    const now = Date.now();
    for (const d of this.domains) {
      const listed = listedPodStatus(d, podIp, (m) => this.isProgrammed(d, m), this.peerNodes(d, now));
      if (listed) return listed;
    }
    // Not listed by any domain: known only if it is a pod on this node (a member whose DNS entry
    // has not appeared yet, or a pod of no domain at all), from the rate-limited view.
    const hostVeth = await this.podLookup.get(podIp);
    return hostVeth === undefined ? undefined : { podIp, programmed: false, reason: 'not_member', hostVeth };
  }

  /** One lookup batch of unlisted IPs: one resolver (one route read, one scan per bridge). */
  private async lookupPods(ips: readonly string[]): Promise<Map<string, string | undefined>> {
    const resolver = this.resolver();
    const out = new Map<string, string | undefined>();
    for (const ip of ips) {
      const r = await resolver.resolve(ip).catch(() => undefined);
      out.set(ip, r && 'local' in r ? r.local.veth : undefined);
    }
    return out;
  }

  /** The allow-list's drop counters as the kernel has them now. */
  private async refreshAllowList(): Promise<void> {
    const list = this.allowListOk ? await this.allowList.read().catch(() => undefined) : undefined;
    if (list) this.allowListDropped = list.dropped;
  }

  private async refreshCounters(): Promise<void> {
    await this.gateway?.refresh();
    const back = await this.ruleset.read().catch(() => undefined);
    await this.refreshAllowList();
    this.metrics.observeAllowList(this.allowListDropped);
    const now = Date.now();
    for (const d of this.domains) this.metrics.observeDomain(d, back, (m) => this.isProgrammed(d, m), this.peerNodes(d, now).status);
    this.metrics.ready.set(this.isReady ? 1 : 0);
    if (this.control) this.metrics.observeControl(this.control);
  }

  /** `counters`: a fresh read of the table, for the delivery chains' counters. */
  status(counters?: ReadonlyMap<string, ReadChain>): NodeStatus {
    const now = Date.now();
    const dl = (d: DomainRuntime): ReadChain | undefined => {
      const name = deliveryChainName(d.domain.vni);
      return this.ruleset.chain(name) ? (counters?.get(name) ?? this.ruleset.chain(name)) : undefined;
    };
    const domains: NodeDomainStatus[] = this.domains.map((d) => {
      const cut = this.announcements.unannounced(d);
      const capture = (veth: string): ReadChain | undefined => counters?.get(captureChainName(veth)) ?? this.ruleset.chain(captureChainName(veth));
      const st = domainStatus(d, (m) => this.isProgrammed(d, m), this.peerNodes(d, now).status, dl(d), capture);
      const localMembers = st.localMembers.map((m) => {
        const multicastMtu = this.podRoutes.mtuOf(m.podIp);
        return multicastMtu === undefined ? m : { ...m, multicastMtu };
      });
      return { ...st, localMembers, ...(cut ? { unannouncedGroups: cut } : {}) };
    });
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.control?.counters ?? {})) if (k !== 'ok') drops[k] = v;
    return {
      mode: 'node',
      version: VERSION,
      nodeIp: this.nodeIp,
      uplink: this.uplink,
      underlayMtu: this.uplinkMtu,
      vxlanPort: this.config.vxlanPort,
      controlPort: this.config.controlPort,
      ready: this.isReady,
      authenticated: this.keys.length > 0,
      ...(this.config.insecureNoKey && this.keys.length === 0 ? { insecureNoKey: true } : {}),
      unregistered: this.config.unregistered,
      domains,
      ruleset: { installed: this.ruleset.isInstalled, chains: this.ruleset.size, ...(this.ruleset.lastError ? { lastError: this.ruleset.lastError } : {}) },
      allowList: { installed: this.allowListOk, peers: this.allowListPeers, dropped: allowListDrops(this.allowListDropped) },
      drops: { control: drops },
      joinWatch: this.joins.status(),
      ...(this.gateway ? { gateway: this.gateway.status() } : {}),
    };
  }
}
