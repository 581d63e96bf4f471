/**
 * `kmcast node`: one agent per node, in the node's network namespace, never inside pods.
 *
 * Per domain (--service): a VXLAN device `kmcvx<vni>` (no address, no routes: src/overlay with
 * `bare`), its flood/MDB entries from the other node agents' STATE, and the nftables chains of
 * src/node/nft.ts that take member pods' multicast off their host veths and deliver decapsulated
 * frames out of them. The local members come from DNS (the Service's A records) filtered by the
 * route to each IP (src/node/members.ts); their joins are read from their own namespaces.
 *
 * Passes, coalesced so that at most one runs at a time:
 * - full: members, joins, devices (full read-and-diff), ruleset (read back, replaced when it
 *   differs or a device it names was recreated), allow-list, monitors, announcements;
 * - entries: only the FDB/MDB delta after a peer changed (the reconciler's fast path);
 * - joins: only re-read the local members' groups and announce a changed set.
 */
import type { Server } from 'node:http';
import { CapabilityError, ConfigError, KmcastError, errorMessage } from '../errors.js';
import { IpClient } from '../iproute2/client.js';
import type { Monitors, MonitorHandle } from '../iproute2/monitor.js';
import { ExecMonitors } from '../iproute2/monitor.js';
import type { Runner } from '../iproute2/runner.js';
import type { Logger } from '../log.js';
import { DnsDiscovery } from '../discovery/dns.js';
import { loadKeyFile } from '../membership/keys.js';
import { PeerTable } from '../membership/peers.js';
import { isRoutableMulticast, sortIpv4 } from '../net/ipv4.js';
import { AllowList } from '../overlay/allowlist.js';
import { BLACKHOLE_IP, desiredState } from '../overlay/desired.js';
import type { OverlaySpec } from '../overlay/desired.js';
import { OverlayReconciler } from '../overlay/reconciler.js';
import { VERSION } from '../version.js';
import type { PodProgramStatus, NotProgrammedReason } from './api.js';
import type { NodeConfig, NodeDomain } from './config.js';
import { nodeClusterLabel } from './config.js';
import { NodeControl } from './control.js';
import { startNodeHttp } from './http.js';
import type { LocalMember } from './members.js';
import { MemberResolver } from './members.js';
import { NodeMetrics } from './metrics.js';
import type { ChainSpec, ReadChain } from './nft.js';
import { NODE_TABLE, captureChainName, desiredChains, parseRuleset, removeScript, renderRuleset, rulesetMismatch, vxChainName } from './nft.js';
import type { NodeDomainStatus, NodeStatus } from './status-types.js';

export interface NodeAgentDeps {
  readonly runner: Runner;
  readonly log: Logger;
  readonly monitors?: Monitors;
}

interface DomainRuntime {
  readonly domain: NodeDomain;
  readonly label: string;
  readonly table: PeerTable;
  readonly reconciler: OverlayReconciler;
  readonly dns: DnsDiscovery;
  spec: OverlaySpec | undefined;
  listed: string[];
  local: Map<string, LocalMember>;
  reasons: Map<string, NotProgrammedReason>;
  groups: Map<string, string[]>;
  announced: boolean;
  announcedGroups: string;
  deviceOk: boolean;
  entries: { fdb: number; mdb: number };
}

type PassKind = 'full' | 'entries' | 'joins';

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
  private keys: Buffer[] = [];
  private uplink = '';
  private nodeIp = '';
  private uplinkMtu = 1500;
  private timers: NodeJS.Timeout[] = [];
  private nodeMonitor: MonitorHandle | undefined;
  private readonly memberMonitors = new Map<string, MonitorHandle>();
  private pending = new Set<PassKind>();
  private running: Promise<void> | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private stopped = false;
  private ready = false;
  private graceUntil = 0;
  /** Read back after the last apply (or adoption): what /status and programmed are judged by. */
  private ruleset = new Map<string, ReadChain>();
  private rulesetOk = false;
  private rulesetError: string | undefined;
  /** Device name -> ifindex when the ruleset was last verified: a recreated device re-binds it. */
  private fingerprint: string | undefined;
  /** A domain device was (re)created since the ruleset was installed. */
  private rebind = false;
  private allowListOk = false;
  private allowListPeers = 0;

  constructor(
    private readonly config: NodeConfig,
    deps: NodeAgentDeps,
  ) {
    this.log = deps.log;
    this.ip = new IpClient(deps.runner);
    this.monitors = deps.monitors ?? new ExecMonitors();
    this.allowList = new AllowList(deps.runner);
    const expiryMs = config.peerExpiry * config.heartbeatMs;
    this.domains = config.domains.map((domain) => ({
      domain,
      label: nodeClusterLabel(domain),
      table: new PeerTable({ selfIp: config.nodeIp ?? '0.0.0.0', expiryMs }),
      reconciler: new OverlayReconciler(this.ip, deps.log.child({ domain: domain.service })),
      dns: new DnsDiscovery(domain.service, { server: config.dnsServer }),
      spec: undefined,
      listed: [],
      local: new Map(),
      reasons: new Map(),
      groups: new Map(),
      announced: false,
      announcedGroups: '',
      deviceOk: false,
      entries: { fdb: 0, mdb: 0 },
    }));
  }

  private get runner(): Runner {
    return this.ip.runner;
  }

  get isReady(): boolean {
    return this.ready;
  }

  async start(): Promise<void> {
    const cfg = this.config;
    await this.checkTools();
    if (cfg.keyFile) this.keys = await loadKeyFile(cfg.keyFile);
    else this.log.warn('no --key-file: control messages are not authenticated; only --peers/--peers-service source addresses are believed');
    await this.detectUplink();
    const expiryMs = cfg.peerExpiry * cfg.heartbeatMs;
    // PeerTable needs the node IP as "self"; it is known only now.
    for (const d of this.domains) {
      (d as { table: PeerTable }).table = new PeerTable({ selfIp: this.nodeIp, expiryMs });
      d.table.setListed('static', cfg.peers.filter((p) => p !== this.nodeIp));
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
    this.control = new NodeControl({ address: this.nodeIp, port: cfg.controlPort, keys: this.keys, domains: this.domains.map((d) => ({ label: d.label, table: d.table })), logger: this.log });
    this.control.onMessage((e) => {
      const d = this.domains.find((x) => x.label === e.label);
      if (!d) return;
      if (e.result.changed) this.request('entries');
      if (e.result.isNew && d.announced) void this.announce(d, [e.from]);
    });
    await this.control.start();
    if (cfg.peersService) this.peersDns = new DnsDiscovery(cfg.peersService, { server: cfg.dnsServer });
    await this.resolveAll();
    // The first pass runs in the pass queue (events from the control socket wait for it) but its
    // error ends the start: a missing capability or a bad device is exit 3 / 2, not a retry loop.
    const first = this.runPass('full');
    this.running = first
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.running = undefined;
        if (this.pending.size && !this.stopped) this.kick();
      });
    await first;
    if (cfg.http) {
      this.http = await startNodeHttp(cfg.http.host, cfg.http.port, {
        metrics: this.metrics,
        beforeScrape: async () => {
          await this.refreshCounters();
        },
        ready: () => this.ready,
        status: async () => await Promise.resolve(this.status()),
        pod: async (ip) => await this.podStatus(ip),
      }).catch((err: unknown) => {
        throw new ConfigError(`--http ${cfg.http!.host}:${cfg.http!.port}: cannot listen: ${errorMessage(err)}`, { cause: err });
      });
    }
    this.nodeMonitor = this.startNodeMonitor();
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      this.timers.push(t);
    };
    every(cfg.heartbeatMs, () => this.heartbeat());
    every(cfg.resolveMs, () => {
      void this.resolveAll().then((changed) => {
        if (changed) this.request('full');
      });
    });
    every(cfg.resyncMs, () => this.request('full'));
    every(cfg.joinsMs, () => this.request('joins'));
    setTimeout(() => this.request('entries'), expiryMs + 50).unref();
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
    for (const t of this.timers) clearInterval(t);
    if (this.debounce) clearTimeout(this.debounce);
    this.nodeMonitor?.stop();
    for (const m of this.memberMonitors.values()) m.stop();
    this.memberMonitors.clear();
    await this.running?.catch(() => undefined);
    for (const d of this.domains) {
      if (d.announced) await this.control?.sendLeave(d.label, d.table.targets());
      d.announced = false;
    }
    await this.control?.close();
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    for (const d of this.domains) d.dns.cancel();
    this.peersDns?.cancel();
  }

  /** Removes everything the node agents install on this node (uninstall; not done on SIGTERM). */
  async teardown(): Promise<void> {
    await this.runner.run(['nft', '-f', '-'], { input: removeScript(), allowFail: true });
    await this.allowList.remove();
    for (const d of this.domains) await d.reconciler.teardown(d.domain.device, undefined);
    const routes = await this.ip.routes();
    if (routes.some((r) => r.type === 'blackhole' && r.dst.replace(/\/32$/, '') === BLACKHOLE_IP)) {
      await this.ip.ipBatch([`route del blackhole ${BLACKHOLE_IP}/32`]);
    }
  }

  private async checkTools(): Promise<void> {
    const r = await this.runner.run(['nft', '--version'], { allowFail: true }).catch((err: unknown) => ({ code: -1, stdout: '', stderr: errorMessage(err) }));
    if (r.code !== 0) {
      throw new CapabilityError('start node agent: the nft command is missing; install nftables (the node data plane is an nftables netdev table)');
    }
    const list = await this.runner.run(['nft', 'list', 'tables'], { allowFail: true });
    if (list.code !== 0 && /Operation not permitted|Permission denied/i.test(list.stderr)) {
      throw new CapabilityError('start node agent: nftables is not permitted; run the node agent with CAP_NET_ADMIN in the node network namespace (hostNetwork: true)');
    }
  }

  private async detectUplink(): Promise<void> {
    const cfg = this.config;
    let uplink = cfg.interface;
    if (uplink === undefined) {
      const [def] = await this.ip.defaultRoutes();
      if (!def?.dev) throw new ConfigError('--interface: no default route to take the uplink from; give --interface NAME');
      uplink = def.dev;
    }
    const link = await this.ip.link(uplink);
    if (!link) throw new ConfigError(`--interface: ${uplink} does not exist on this node`);
    let nodeIp = cfg.nodeIp;
    if (nodeIp === undefined) {
      const [first] = await this.ip.addrs(uplink);
      if (!first) throw new ConfigError(`--node-ip: ${uplink} has no IPv4 address; give --node-ip IP`);
      nodeIp = first.split('/')[0]!;
    }
    this.uplink = uplink;
    this.nodeIp = nodeIp;
    this.uplinkMtu = link.mtu;
  }

  /** Re-resolves every domain and the peers Service; true when a member list changed. */
  private async resolveAll(): Promise<boolean> {
    let changed = false;
    await Promise.all(
      this.domains.map(async (d) => {
        try {
          const ips = await d.dns.resolve();
          if (ips.join() !== d.listed.join()) {
            d.listed = ips;
            changed = true;
          }
        } catch (err) {
          this.log.warn({ domain: d.domain.service, err: errorMessage(err) }, 'resolve domain failed; keeping the last member list');
        }
      }),
    );
    if (this.peersDns) {
      try {
        const ips = (await this.peersDns.resolve()).filter((p) => p !== this.nodeIp);
        for (const d of this.domains) d.table.setListed('dns', ips);
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'resolve --peers-service failed; keeping the last peer list');
      }
    }
    return changed;
  }

  private heartbeat(): void {
    const now = Date.now();
    let expired = false;
    for (const d of this.domains) {
      const gone = d.table.expire(now);
      if (gone.length) {
        expired = true;
        this.log.warn({ domain: d.domain.service, peers: gone }, 'peer nodes expired');
      }
      if (d.announced) void this.announce(d, d.table.targets());
    }
    if (expired) this.request('entries');
  }

  private async announce(d: DomainRuntime, to: readonly string[]): Promise<void> {
    await this.control?.sendState(d.label, to, this.domainGroups(d));
  }

  private domainGroups(d: DomainRuntime): string[] {
    const all = new Set<string>();
    for (const ip of d.local.keys()) for (const g of d.groups.get(ip) ?? []) all.add(g);
    return sortIpv4(all);
  }

  /** Asks for a pass; passes are coalesced (a burst of events is one pass). */
  request(kind: PassKind): void {
    if (this.stopped) return;
    this.pending.add(kind);
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.kick();
    }, kind === 'entries' ? 0 : 50);
  }

  private kick(): void {
    if (this.running) return;
    this.running = (async () => {
      while (this.pending.size && !this.stopped) {
        const kind: PassKind = this.pending.has('full') ? 'full' : this.pending.has('joins') ? 'joins' : 'entries';
        if (kind === 'full') this.pending.clear();
        else this.pending.delete(kind);
        try {
          await this.runPass(kind);
        } catch (err) {
          this.log.error({ pass: kind, err: errorMessage(err) }, 'data plane pass failed; retrying at the next event or resync');
        }
      }
    })().finally(() => {
      this.running = undefined;
      if (this.pending.size && !this.stopped) this.kick();
    });
  }

  private async runPass(kind: PassKind): Promise<void> {
    if (kind === 'entries') {
      await this.syncEntries(true);
      return;
    }
    if (kind === 'joins') {
      await this.readJoins();
      await this.syncAnnouncements();
      return;
    }
    try {
      await this.resolveMembers();
      await this.readJoins();
      await this.syncEntries(false);
      await this.syncRuleset();
      await this.syncAllowList();
      this.syncMemberMonitors();
      await this.syncAnnouncements();
      this.ready = this.rulesetOk && this.domains.every((d) => d.deviceOk);
      this.metrics.ready.set(this.ready ? 1 : 0);
      this.metrics.syncs.labels('ok').inc();
    } catch (err) {
      this.metrics.syncs.labels('error').inc();
      throw err;
    }
  }

  private async resolveMembers(): Promise<void> {
    const resolver = new MemberResolver(this.ip, (ns) => new IpClient(this.runner, ns));
    for (const d of this.domains) {
      const local = new Map<string, LocalMember>();
      const reasons = new Map<string, NotProgrammedReason>();
      for (const ip of d.listed) {
        const r = await resolver.resolve(ip);
        if ('local' in r) local.set(ip, r.local);
        else reasons.set(ip, r.reason);
      }
      const before = [...d.local.values()].map((m) => `${m.ip}@${m.veth}#${m.vethIndex}`).join();
      const after = [...local.values()].map((m) => `${m.ip}@${m.veth}#${m.vethIndex}`).join();
      if (before !== after) this.log.info({ domain: d.domain.service, members: [...local.values()].map((m) => ({ ip: m.ip, veth: m.veth, netns: m.netns })) }, 'local members');
      d.local = local;
      d.reasons = reasons;
      for (const ip of d.groups.keys()) if (!local.has(ip)) d.groups.delete(ip);
    }
  }

  private async readJoins(): Promise<void> {
    await Promise.all(
      this.domains.flatMap((d) =>
        [...d.local.values()].map(async (m) => {
          try {
            const groups = (await new IpClient(this.runner, m.netns).maddrsOfIndex(m.podIndex)).filter((g) => isRoutableMulticast(g));
            d.groups.set(m.ip, sortIpv4(new Set(groups)));
          } catch (err) {
            this.log.debug({ pod: m.ip, err: errorMessage(err) }, 'read joins failed (pod gone?)');
          }
        }),
      ),
    );
  }

  private async syncEntries(fast: boolean): Promise<void> {
    for (const d of this.domains) {
      if (!d.spec) continue;
      const peers = d.table.alive().map((p) => ({ ip: p.ip, groups: p.groups }));
      const desired = desiredState(d.spec, peers);
      try {
        const r = await d.reconciler.reconcile(desired, { prune: Date.now() >= this.graceUntil, fast });
        if (r.plan.recreate || r.plan.ip.some((l) => l.startsWith('link add'))) this.rebind = true;
        d.deviceOk = true;
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
  }

  private wantedChains(): ChainSpec[] {
    return desiredChains(this.domains.map((d) => ({ vni: d.domain.vni, device: d.domain.device, members: [...d.local.values()].map((m) => m.veth) })));
  }

  private async currentFingerprint(chains: readonly ChainSpec[]): Promise<string> {
    const names = [...new Set(chains.flatMap((c) => [c.device, ...c.dups, ...(c.fwd ? [c.fwd] : [])]))].sort();
    const parts: string[] = [];
    for (const n of names) {
      const [l] = await this.ip.links({ dev: n });
      parts.push(`${n}=${l?.ifindex ?? 'none'}`);
    }
    return parts.join(',');
  }

  private async readRuleset(): Promise<Map<string, ReadChain> | undefined> {
    const r = await this.runner.run(['nft', '-j', 'list', 'table', 'netdev', NODE_TABLE], { allowFail: true });
    return r.code === 0 ? parseRuleset(r.stdout) : undefined;
  }

  /**
   * Installs the ruleset when it differs from the read-back, when a device it names was
   * recreated (a hook or a dup/fwd target is bound to an ifindex when the rule loads), and once
   * at start (the table a previous agent left is replaced atomically: the listing cannot show a
   * hook whose device was recreated meanwhile). Then reads it back: fail closed.
   */
  private async syncRuleset(): Promise<void> {
    const want = this.wantedChains();
    const fp = await this.currentFingerprint(want);
    const have = await this.readRuleset();
    const mismatch = have === undefined ? 'table missing' : rulesetMismatch(want, have);
    const reason = mismatch ?? (this.fingerprint === undefined ? 'adopting at start' : fp !== this.fingerprint || this.rebind ? 'a device was recreated' : undefined);
    if (reason === undefined) {
      this.ruleset = have!;
      this.rulesetOk = true;
      return;
    }
    this.log.info({ reason, chains: want.length }, 'installing node ruleset');
    try {
      await this.runner.run(['nft', '-f', '-'], { input: renderRuleset(want) });
    } catch (err) {
      this.rulesetOk = false;
      this.rulesetError = errorMessage(err);
      this.metrics.rulesetApplies.labels('error').inc();
      if (/Operation not permitted|Permission denied/i.test(this.rulesetError)) {
        throw new CapabilityError('install node ruleset: not permitted; the node agent needs CAP_NET_ADMIN', { cause: err });
      }
      // A device vanished between reading and applying (a pod deleted): the next pass re-resolves.
      setTimeout(() => this.request('full'), 200).unref();
      throw new KmcastError(`install node ruleset: ${this.rulesetError}`, { cause: err });
    }
    const back = await this.readRuleset();
    const bad = back === undefined ? 'table missing after apply' : rulesetMismatch(want, back);
    if (bad !== undefined) {
      this.rulesetOk = false;
      this.rulesetError = `read back: ${bad}`;
      this.metrics.rulesetApplies.labels('error').inc();
      throw new KmcastError(`verify node ruleset: ${bad}`);
    }
    this.ruleset = back!;
    this.rulesetOk = true;
    this.rulesetError = undefined;
    this.rebind = false;
    this.fingerprint = await this.currentFingerprint(want);
    this.metrics.rulesetApplies.labels('ok').inc();
  }

  private async syncAllowList(): Promise<void> {
    const peers = new Set<string>();
    for (const d of this.domains) for (const p of d.table.targets()) peers.add(p);
    try {
      const state = await this.allowList.apply({ vxlanPort: this.config.vxlanPort, controlPort: this.keys.length ? undefined : this.config.controlPort, peers: [...peers] });
      this.allowListOk = true;
      this.allowListPeers = state.peers.length;
    } catch (err) {
      this.allowListOk = false;
      throw err;
    }
  }

  private startNodeMonitor(): MonitorHandle {
    return this.monitors.start(['ip', 'monitor', 'link', 'route'], undefined, () => this.request('full'));
  }

  private syncMemberMonitors(): void {
    if (this.nodeMonitor && !this.nodeMonitor.running && !this.stopped) this.nodeMonitor = this.startNodeMonitor();
    const want = new Set<string>();
    for (const d of this.domains) for (const m of d.local.values()) want.add(m.netns);
    for (const [ns, h] of this.memberMonitors) {
      if (!want.has(ns) || !h.running) {
        h.stop();
        this.memberMonitors.delete(ns);
      }
    }
    for (const ns of want) {
      if (!this.memberMonitors.has(ns)) this.memberMonitors.set(ns, this.monitors.start(['ip', 'monitor', 'maddress'], ns, () => this.request('joins')));
    }
  }

  private async syncAnnouncements(): Promise<void> {
    for (const d of this.domains) {
      if (d.local.size > 0) {
        const groups = this.domainGroups(d).join();
        if (!d.announced || groups !== d.announcedGroups) {
          d.announced = true;
          d.announcedGroups = groups;
          await this.announce(d, d.table.targets());
        }
      } else if (d.announced) {
        d.announced = false;
        d.announcedGroups = '';
        await this.control?.sendLeave(d.label, d.table.targets());
      }
    }
  }

  private isProgrammed(d: DomainRuntime, m: LocalMember): boolean {
    if (!this.rulesetOk || !d.deviceOk) return false;
    const cap = this.ruleset.get(captureChainName(m.veth));
    const vx = this.ruleset.get(vxChainName(d.domain.vni));
    return cap !== undefined && !cap.stale && cap.fwd === d.domain.device && vx !== undefined && !vx.stale && vx.dups.includes(m.veth);
  }

  async podStatus(podIp: string): Promise<PodProgramStatus | undefined> {
    for (const d of this.domains) {
      if (!d.listed.includes(podIp)) continue;
      const m = d.local.get(podIp);
      if (!m) {
        const reason = d.reasons.get(podIp) ?? 'pending';
        return { podIp, programmed: false, reason, domain: d.domain.service };
      }
      const programmed = this.isProgrammed(d, m);
      return {
        podIp,
        programmed,
        ...(programmed ? {} : { reason: 'pending' as const }),
        domain: d.domain.service,
        hostVeth: m.veth,
        groups: d.groups.get(podIp) ?? [],
      };
    }
    // Not listed by any domain: known only if it is a pod on this node (a member whose DNS entry
    // has not appeared yet, or a pod of no domain at all).
    const r = await new MemberResolver(this.ip, (ns) => new IpClient(this.runner, ns)).resolve(podIp).catch(() => undefined);
    if (r && 'local' in r) return { podIp, programmed: false, reason: 'not_member', hostVeth: r.local.veth };
    return undefined;
  }

  private async refreshCounters(): Promise<void> {
    const back = await this.readRuleset().catch(() => undefined);
    for (const d of this.domains) {
      let captured = 0;
      for (const m of d.local.values()) captured += back?.get(captureChainName(m.veth))?.packets ?? 0;
      this.metrics.captured.labels(d.domain.service).set(captured);
      this.metrics.delivered.labels(d.domain.service).set(back?.get(vxChainName(d.domain.vni))?.packets ?? 0);
      let programmed = 0;
      for (const m of d.local.values()) if (this.isProgrammed(d, m)) programmed++;
      this.metrics.localMembers.labels(d.domain.service, 'true').set(programmed);
      this.metrics.localMembers.labels(d.domain.service, 'false').set(d.local.size - programmed);
      const counts: Record<string, number> = { pending: 0, alive: 0, left: 0, expired: 0 };
      for (const p of d.table.status()) counts[p.state] = (counts[p.state] ?? 0) + 1;
      for (const [state, n] of Object.entries(counts)) this.metrics.peers.labels(d.domain.service, state).set(n);
    }
    if (this.control) {
      for (const [result, n] of Object.entries(this.control.counters)) this.metrics.controlReceived.labels(result).set(n);
      this.metrics.controlSent.labels('sent').set(this.control.sendCounters.sent);
      this.metrics.controlSent.labels('failed').set(this.control.sendCounters.failed);
    }
  }

  status(): NodeStatus {
    const domains: NodeDomainStatus[] = this.domains.map((d) => ({
      service: d.domain.service,
      vni: d.domain.vni,
      device: d.domain.device,
      label: d.label,
      listed: d.listed,
      localMembers: [...d.local.values()].map((m) => {
        const programmed = this.isProgrammed(d, m);
        return { podIp: m.ip, hostVeth: m.veth, netns: m.netns, groups: d.groups.get(m.ip) ?? [], programmed, ...(programmed ? {} : { reason: 'pending' as const }) };
      }),
      announced: d.announced,
      groups: this.domainGroups(d),
      peers: d.table.status(),
      entries: d.entries,
    }));
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.control?.counters ?? {})) if (k !== 'ok') drops[k] = v;
    return {
      mode: 'node',
      version: VERSION,
      nodeIp: this.nodeIp,
      uplink: this.uplink,
      vxlanPort: this.config.vxlanPort,
      controlPort: this.config.controlPort,
      ready: this.ready,
      authenticated: this.keys.length > 0,
      unregistered: this.config.unregistered,
      domains,
      ruleset: { installed: this.rulesetOk, chains: this.ruleset.size, ...(this.rulesetError ? { lastError: this.rulesetError } : {}) },
      allowList: { installed: this.allowListOk, peers: this.allowListPeers },
      drops: { control: drops },
    };
  }
}

