/**
 * The kmcast agent: wires discovery, membership and the overlay together. Everything that changes
 * the data plane funnels into one single-flight sync (desired vs actual, never replayed events),
 * which also runs periodically to repair drift (a deleted vx0, a removed route or entry).
 */
import type { Server } from 'node:http';
import { CapabilityError, ConfigError, errorMessage } from '../errors.js';
import { IpClient } from '../kernel/ip.js';
import { NftClient } from '../kernel/nft.js';
import type { Monitors } from '../kernel/monitor.js';
import { ExecMonitors } from '../kernel/monitor.js';
import type { Sysctl } from '../kernel/sysctl.js';
import { SysctlClient } from '../kernel/sysctl.js';
import { readSnmp6 } from '../kernel/snmp.js';
import type { Runner } from '../kernel/runner.js';
import type { Logger } from '../log.js';
import { DnsDiscovery, ignoredDnsRecords } from '../discovery/dns.js';
import { clusterLabel } from '../membership/codec.js';
import { admittedPeers } from '../membership/admission.js';
import { Announcer } from '../membership/announcer.js';
import { ControlChannel } from '../membership/control.js';
import { watchKeyFile } from '../membership/keys.js';
import type { KeyFileWatcher } from '../membership/keys.js';
import { LocalGroupsWatcher } from '../membership/local-groups.js';
import { OverlayJoiner } from '../membership/overlay-joins.js';
import { PeerTable } from '../membership/peers.js';
import { EXPIRED_MESSAGE, ExpiryClock, expireTickMs, peerTableTiming, SUSPECT_MESSAGE } from '../membership/expiry.js';
import { AllowList } from '../overlay/allowlist.js';
import type { AllowListFamily } from '../overlay/allowlist.js';
import { applyCapture, removeCapture } from '../overlay/capture.js';
import { PodFilters } from './filters.js';
import type { OverlaySpec } from '../overlay/desired.js';
import { blackholeFor, desiredState } from '../overlay/desired.js';
import { OverlayReconciler } from '../overlay/reconciler.js';
import { VERSION } from '../version.js';
import { PassQueue } from '../runtime/pass-queue.js';
import type { AgentConfig } from './config.js';
import { checkRpFilter, hasNetAdmin, overlayIpv6, precheckRpFilter } from './host.js';
import { podOverlaySpec } from './spec.js';
import { startHttp } from '../runtime/http.js';
import { AgentMetrics } from './metrics.js';
import type { AgentStatus } from './status-types.js';

const ZERO_MAC = '00:00:00:00:00:00';

export interface AgentDeps {
  readonly runner: Runner;
  /** Streams `ip monitor` (the join watcher); default: real processes. */
  readonly monitors?: Monitors;
  /** rp_filter; default: /proc/sys of `netns` (src/kernel/sysctl.ts). */
  readonly sysctl?: Sysctl;
  readonly log: Logger;
  /** Namespace to act in; undefined in a real pod (the agent runs inside it). */
  readonly netns?: string;
}

export class Agent {
  readonly metrics = new AgentMetrics();
  private readonly ip: IpClient;
  private readonly runner: Runner;
  private readonly netns: string | undefined;
  private readonly log: Logger;
  private readonly reconciler: OverlayReconciler;
  /** The allow-list and the eth0 capture (filters.ts). */
  private readonly filters: PodFilters;
  private spec!: OverlaySpec;
  private table!: PeerTable;
  private channel: ControlChannel | undefined;
  private announcer: Announcer | undefined;
  private keyWatcher: KeyFileWatcher | undefined;
  /** What the allow-list admitted when this agent started (a previous agent's), kept during the grace. */
  private inheritedAdmission: readonly string[] = [];
  private readonly expiry = new ExpiryClock();
  private watcher: LocalGroupsWatcher | undefined;
  private dns: DnsDiscovery | undefined;
  private http: Server | undefined;
  private keys: Buffer[] = [];
  private timers: NodeJS.Timeout[] = [];
  private mac = ZERO_MAC;
  private isReady = false;
  private dnsResolved = false;
  /** The data-plane passes (runtime/pass-queue.ts, the node agent's queue too): `full` reads the kernel and diffs, `fast` applies event-driven deltas. */
  private readonly passes = new PassQueue<'full' | 'fast'>({
    kinds: ['full', 'fast'],
    subsumes: (k) => (k === 'full' ? ['fast'] : []),
    run: async (k) => await this.syncPass(k === 'fast'),
    onError: (_k, err, retryInMs) => {
      this.metrics.commandErrors.inc();
      this.metrics.reconciles.inc({ result: 'error' });
      this.log.error({ err: errorMessage(err), retryInMs }, 'sync failed; retrying');
    },
    retryKind: 'full',
    paused: true,
  });
  private entryCounts = { fdb: 0, mdb: 0, routes: 0 };
  private stopped = false;
  /** Until then, entries a previous agent left on an adopted vx0 are kept (see PlanOptions.prune). */
  private graceUntil = 0;
  /** Until start() has built the data plane itself, event-driven syncs are not scheduled. */
  private running = false;

  constructor(
    readonly config: AgentConfig,
    deps: AgentDeps,
  ) {
    this.log = deps.log;
    this.runner = deps.runner;
    this.netns = deps.netns;
    this.ip = new IpClient(deps.runner, deps.netns);
    this.reconciler = new OverlayReconciler(this.ip, this.log);
    const nft = new NftClient(deps.runner, deps.netns);
    this.allowList = new AllowList(deps.runner, deps.netns);
    this.newAllowList = (family) => new AllowList(deps.runner, deps.netns, family);
    this.filters = new PodFilters({
      // The table's family is the underlay's, known once the spec is (an IPv6 pod IP: ip6).
      allowList: {
        apply: async (spec) => await this.allowList.apply(spec),
        read: async (capture) => await this.allowList.read(capture),
        remove: async (opts) => await this.allowList.remove(opts),
      },
      capture: { apply: async (spec) => await applyCapture(nft, spec), remove: async () => await removeCapture(nft) },
      vxlanPort: config.vxlanPort,
      controlPort: config.controlPort,
      noAllowList: config.insecureNoAllowlist,
      captureOn: config.capture === 'on',
      observe: ({ peers, dropped }) => {
        if (peers !== undefined) this.metrics.allowListPeers.set(peers);
        for (const [rule, n] of Object.entries(dropped)) this.metrics.allowListDropped.set({ port: rule.replace('kmcast-', '') }, n);
      },
    });
    this.monitors = deps.monitors ?? new ExecMonitors();
    this.sysctl = deps.sysctl ?? new SysctlClient(deps.runner, deps.netns);
  }

  private readonly monitors: Monitors;
  private readonly sysctl: Sysctl;
  private allowList: AllowList;
  private readonly newAllowList: (family: AllowListFamily) => AllowList;

  ready(): boolean {
    return this.isReady;
  }

  /** Brings the overlay up; with --setup-only returns once vx0 and its routes exist. */
  async start(): Promise<void> {
    try {
      await this.startSteps();
    } catch (err) {
      // Fail closed and leave nothing half-made (a vx0 without its allow-list or checks).
      await this.stop({ removeDevice: true }).catch(() => undefined);
      throw err;
    }
  }

  private async startSteps(): Promise<void> {
    const cfg = this.config;
    if (!(await hasNetAdmin())) {
      throw new CapabilityError('start agent: missing CAP_NET_ADMIN; add it to the kmcast container (securityContext.capabilities.add: ["NET_ADMIN"]) — nothing else is needed');
    }
    if (cfg.http && !cfg.setupOnly) {
      this.http = await startHttp(cfg.http.host, cfg.http.port, {
        metrics: this.metrics,
        beforeScrape: async () => {
          await this.status();
        },
        ready: () => this.isReady,
        status: () => this.status(),
      }).catch((err: unknown) => {
        throw new ConfigError(`--http ${cfg.http!.host}:${cfg.http!.port}: cannot listen: ${errorMessage(err)}`, { cause: err });
      });
    }
    const { spec, floodFallback } = await podOverlaySpec(this.ip, cfg, this.log);
    if (spec.localIp6 !== undefined) {
      // An IPv6-only pod (an IPv6 pod IP): the underlay is IPv6 and vx0 carries IPv6 multicast;
      // IPv4 multicast has no source address here and reaches nobody.
      this.spec = spec;
      this.allowList = this.newAllowList('ip6');
      this.checkPeerFamily(spec.localIp);
      this.log.info({ underlay: spec.underlay, podIp: spec.localIp }, 'IPv6 pod IP: VXLAN over IPv6, control over udp6, peers from AAAA records');
    } else {
      const ipv6 = await overlayIpv6(this.sysctl, spec.underlay);
      if (!ipv6) this.log.info({ underlay: spec.underlay }, 'IPv6 is off in this pod: vx0 carries IPv4 only');
      this.spec = { ...spec, localIp6: ipv6 ? await this.podIpv6(spec.underlay) : undefined };
      this.checkPeerFamily(spec.localIp);
    }
    this.metrics.floodFallback.set(floodFallback ? 1 : 0);
    this.table = new PeerTable({
      selfIp: this.spec.localIp,
      ...peerTableTiming(cfg),
    });
    this.table.setListed('static', cfg.peers);
    // A restarted sidecar adopts a populated vx0: give the peers one expiry to be heard from
    // before pruning what the previous agent programmed, so a restart cuts no traffic.
    this.graceUntil = Date.now() + cfg.peerExpiry * cfg.heartbeatMs;
    setTimeout(() => this.scheduleSync(true), cfg.peerExpiry * cfg.heartbeatMs + 50).unref();
    if (cfg.keyFile) this.keys = await this.watchKeyFile(cfg.keyFile);
    else if (!cfg.setupOnly) {
      this.log.warn('no --key-file: control messages are not authenticated; only DNS and --peers source addresses are believed, and new pods wait for DNS');
    }
    if (cfg.service) {
      // The members' records of the underlay's family: AAAA ones for an IPv6 pod IP.
      this.dns = new DnsDiscovery(cfg.service, { server: cfg.dnsServer, family: this.family, onIgnored: (name, ignored) => ignoredDnsRecords(this.log, name, ignored) });
      await this.resolve();
    }
    if (this.family === 4) await precheckRpFilter(this.sysctl);
    if (!cfg.insecureNoAllowlist) {
      this.inheritedAdmission = await this.filters.inherited();
      await this.filters.sync(this.admitted(), this.keyed, { initial: true });
    } else {
      // A list left by an earlier agent (SIGTERM empties it, fail closed) would block everything.
      await this.filters.removeAllowList();
      this.log.warn('--insecure-no-allowlist: the overlay accepts VXLAN from anyone who can reach the pod');
    }
    await this.syncOverlay();
    await this.checkRpFilter();
    await this.startCapture();
    this.log.info({ device: cfg.device, podIp: this.spec.localIp, underlay: this.spec.underlay, vni: cfg.vni, port: cfg.vxlanPort, replication: this.spec.replication }, 'overlay device ready');
    if (cfg.setupOnly) return;

    this.channel = new ControlChannel({
      address: this.spec.localIp,
      port: cfg.controlPort,
      cluster: clusterLabel(cfg.service, cfg.vni),
      keys: this.keys,
      table: this.table,
      logger: this.log,
    });
    const channel = this.channel;
    this.metrics.followControlCounters(() => channel.counters);
    this.metrics.followPeerLimits(() => this.table.limits());
    const underlay = cfg.capture === 'on' ? { underlay: this.spec.underlay, joiner: new OverlayJoiner(this.log, cfg.device) } : undefined;
    this.watcher = new LocalGroupsWatcher(this.ip, this.monitors, cfg.device, this.log, Math.min(2000, cfg.resyncMs), underlay);
    const watcher = this.watcher;
    this.announcer = new Announcer({
      channel,
      local: () => ({ mac: this.mac, overlay: this.spec.localIp, groups: watcher.groups() }),
      targets: () => this.table.targets(),
      log: this.log,
      onSent: (n) => this.metrics.controlSent.inc({ type: 'state' }, n),
      onCapped: (dropped) => this.metrics.unannouncedGroups.set(dropped),
    });
    this.channel.onMessage((ev) => {
      // A new peer, or one that restarted (new incarnation, so it has lost our STATE): answer at
      // once instead of at our next heartbeat.
      if (ev.result.isNew || ev.result.restarted) {
        this.log.info({ peer: ev.msg.sender, groups: ev.msg.groups.length, restarted: ev.result.restarted }, 'peer alive');
        void this.announce([ev.from.address]);
      }
      if (ev.result.changed) this.scheduleSync();
    });
    await this.channel.start();

    this.watcher.on('change', (groups) => {
      this.log.info({ groups: groups.length > 50 ? `${groups.length} groups` : groups }, 'local groups changed');
      this.metrics.localGroups.set(groups.length);
      for (const [iface, g] of Object.entries(this.watcher?.byInterface() ?? {})) this.metrics.groupsByInterface.set({ interface: iface }, g.length);
      const t0 = process.hrtime.bigint();
      void this.announce().then(() => this.metrics.announceLatency.observe(Number(process.hrtime.bigint() - t0) / 1e9));
    });
    await this.watcher.start();
    // Only now may STATE go out: before the first read, our group set would look empty.
    this.announcer.localKnown();
    this.running = true;
    this.passes.resume(); // whatever arrived while starting
    this.scheduleSync();

    this.every(cfg.heartbeatMs, () => void this.announce());
    this.every(this.expireTickMs(), () => this.expire());
    if (this.dns) this.every(cfg.resolveMs, () => void this.resolve());
    this.every(cfg.resyncMs, () => {
      void this.watcher?.refresh();
      this.filters.invalidate(); // read the allow-list and the capture chain back too
      this.scheduleSync(true);
    });
    await this.announce();
    this.isReady = this.dnsResolved || !this.dns;
    this.metrics.ready.set(this.isReady ? 1 : 0);
    this.log.info({ peers: this.table.targets().length }, 'agent running');
  }

  /**
   * Clean shutdown: tell the peers we leave (they drop us at once), then quiesce the data plane:
   * no replication entries (nothing is sent) and an empty allow-list (nothing is admitted). The
   * device itself stays: the apps' group memberships live on it, and a sidecar restarted with
   * SIGTERM (a failed liveness probe) would otherwise leave every app deaf until it re-joins. The
   * pod's network namespace takes vx0 with it when the pod goes. `removeDevice` is for a start
   * that failed half-way (fail closed, leave nothing half-made).
   */
  async stop(opts: { removeDevice?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.isReady = false;
    for (const t of this.timers) clearInterval(t);
    this.keyWatcher?.stop();
    this.announcer?.stop();
    this.watcher?.stop();
    this.dns?.cancel();
    if (this.channel && this.table) {
      const targets = this.table.targets();
      await this.channel.sendLeave(targets, { mac: this.mac, overlay: this.spec.localIp });
      this.log.info({ peers: targets.length }, 'sent LEAVE');
      await this.channel.close();
    }
    await this.passes.stop();
    const logError = (what: string) => (err: unknown) => this.log.error({ err: errorMessage(err) }, what);
    if (this.spec && opts.removeDevice) {
      const underlay6 = this.spec.localIp.includes(':') ? this.spec.underlay : undefined;
      await this.reconciler.teardown(this.config.device, blackholeFor(this.spec.localIp), underlay6).catch(logError('removing overlay device failed'));
      await this.filters.remove().catch(() => undefined);
    } else if (this.spec && this.running) {
      await this.filters.quiesce(this.keyed).catch(logError('emptying the allow-list failed'));
      await this.reconciler.reconcile(desiredState(this.spec, [])).catch(logError('removing replication entries failed'));
      this.log.info({ device: this.config.device }, 'overlay quiesced; the device stays for the next agent');
    }
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    this.http?.closeAllConnections();
  }

  async status(): Promise<AgentStatus> {
    const stats = this.spec ? await this.ip.stats(this.config.device).catch(() => undefined) : undefined;
    const unregistered = stats?.txCarrierErrors ?? 0;
    this.metrics.unregisteredDropped.set(unregistered);
    // On an IPv6 underlay a VXLAN packet longer than eth0 is lost: the kernel never fragments
    // VXLAN over IPv6 and counts it as Ip6FragFails (an app that fragments at eth0's own MTU
    // despite eth0's multicast route at vx0's; docs/kernel-notes.md). Nothing else in a pod fails
    // to fragment.
    const tooLong = this.spec?.localIp.includes(':') ? (await readSnmp6(this.runner, this.netns).catch(() => undefined))?.get('Ip6FragFails') : undefined;
    if (tooLong !== undefined) this.metrics.underlayTooLong.set(tooLong);
    await this.filters.refreshCounters();
    return {
      version: VERSION,
      podIp: this.spec?.localIp ?? '',
      ...(this.spec?.localIp6 ? { podIp6: this.spec.localIp6 } : {}),
      underlay: this.spec?.underlay ?? '',
      device: this.config.device,
      vni: this.config.vni,
      vxlanPort: this.config.vxlanPort,
      controlPort: this.config.controlPort,
      addressing: this.config.addressing.kind === 'subnet' ? `subnet=${this.config.addressing.cidr}` : this.config.addressing.kind,
      unregistered: this.config.unregistered,
      replication: this.spec?.replication ?? 'selective',
      ready: this.isReady,
      authenticated: this.keyed,
      peers: this.table?.status() ?? [],
      localGroups: this.watcher?.groups() ?? [],
      ...(this.announcer?.unannounced ? { unannouncedGroups: this.announcer.unannounced } : {}),
      entries: { ...this.entryCounts },
      drops: { unregistered, control: this.channel ? this.dropCounters() : {}, ...(tooLong !== undefined ? { underlayTooLong: tooLong } : {}) },
      ...this.captureStatus(),
    };
  }

  /** The allow-list, the capture path and the apps' groups per interface, for /status and the metrics. */
  private captureStatus(): Pick<AgentStatus, 'allowList' | 'capture' | 'groupsByInterface'> {
    const filters = this.filters.status(this.spec?.underlay ?? '');
    this.metrics.captureActive.set(filters.capture?.installed ? 1 : 0);
    this.metrics.captureForwarded.set(filters.capture?.forwarded ?? 0);
    return { ...filters, groupsByInterface: this.watcher?.byInterface() ?? {} };
  }

  /**
   * The pod's IPv6 address (the underlay's first global one); without one vx0 still receives IPv6
   * multicast but nothing is routed to it (desired.ts).
   */
  private async podIpv6(underlay: string): Promise<string | undefined> {
    const [first] = await this.ip.addrs6(underlay);
    const ip6 = first?.split('/')[0];
    if (ip6) this.log.debug({ underlay, ip6 }, 'dual stack: vx0 gets the pod IPv6 address too');
    return ip6;
  }

  /** After vx0 exists: install the capture (fail closed at start), or remove one an earlier agent left when it is off. */
  private async startCapture(): Promise<void> {
    const installed = await this.filters.overlayUp({ underlay: this.spec.underlay, device: this.config.device, broadcastAddress: this.spec.broadcastAddress }, this.admitted(), this.keyed);
    if (installed) this.log.info({ underlay: this.spec.underlay, device: this.config.device }, 'eth0 capture installed: multicast and broadcast sent out of the pod interface go into the overlay');
  }

  private dropCounters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.channel!.counters)) if (k !== 'ok' && v > 0) out[k] = v;
    return out;
  }

  private get keyed(): boolean {
    return this.keys.length > 0;
  }

  /** How often peers' silence is checked: a quarter heartbeat. */
  private expireTickMs(): number {
    return expireTickMs(this.config.heartbeatMs);
  }

  /** Loads --key-file and re-reads it when it changes (a Secret update): rotation needs no restart. */
  private async watchKeyFile(path: string): Promise<Buffer[]> {
    const { watcher, keys } = await watchKeyFile(path, {
      apply: (next) => {
        this.keys = next;
        this.channel?.setKeys(next);
      },
      reloads: this.metrics.keyReloads,
      log: this.log,
    });
    this.keyWatcher = watcher;
    return keys;
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    this.timers.push(t);
  }

  /** The underlay's family: its `local` address's (a VXLAN device sends in one family). */
  private get family(): 4 | 6 {
    return this.spec.localIp.includes(':') ? 6 : 4;
  }

  /** --peers of the other family can never be reached: the underlay is one family. */
  private checkPeerFamily(podIp: string): void {
    const foreign = this.config.peers.filter((p) => p.includes(':') !== podIp.includes(':'));
    if (foreign.length === 0) return;
    const family = podIp.includes(':') ? 6 : 4;
    throw new ConfigError(
      `--peers: ${foreign.join(', ')} ${foreign.length > 1 ? 'are' : 'is'} not IPv${family} like this pod's IP ${podIp}: the overlay's underlay is one family (a VXLAN device sends in its local address's); give every pod's IPv${family} address`,
    );
  }

  /**
   * Sets loose rp_filter on the overlay device and checks it (host.ts). IPv4's reverse-path
   * filter only: an IPv6 underlay carries the overlay as IPv6, which has none, so there is
   * nothing to check (and nothing an IPv4 setting could block).
   */
  private async checkRpFilter(): Promise<void> {
    if (this.family === 6) return;
    const r = await checkRpFilter(this.sysctl, this.config.device);
    this.log.debug({ all: r.all, [this.config.device]: r.own, effective: r.effective }, 'rp_filter ok');
  }

  private async resolve(): Promise<void> {
    if (!this.dns) return;
    try {
      // Unicast only: an A record of 0.0.0.0 or a multicast address is no pod (discovery/dns.ts).
      const ips = await this.dns.resolve();
      this.metrics.dnsLookups.inc({ result: 'ok' });
      const before = new Set(this.table.targets());
      this.table.setListed('dns', ips);
      const fresh = this.table.targets().filter((ip) => !before.has(ip));
      if (!this.dnsResolved) this.log.info({ service: this.dns.name, peers: ips }, 'first peer resolution');
      this.dnsResolved = true;
      if (this.channel && !this.isReady) {
        this.isReady = true;
        this.metrics.ready.set(1);
      }
      if (fresh.length) {
        this.log.info({ peers: fresh }, 'new peers listed by DNS');
        void this.announce(fresh);
        this.scheduleSync();
      }
    } catch (err) {
      this.metrics.dnsLookups.inc({ result: 'error' });
      this.log.warn({ service: this.dns.name, err: errorMessage(err) }, 'DNS lookup failed; keeping the last known peers');
    }
  }

  private expire(): void {
    const { expired, suspects } = this.expiry.tick(this.table, Date.now());
    if (expired.length) {
      this.log.warn({ peers: expired }, EXPIRED_MESSAGE);
      this.scheduleSync();
    }
    if (suspects?.length) this.log.info({ peers: suspects }, SUSPECT_MESSAGE);
  }

  private async announce(targets?: readonly string[]): Promise<void> {
    await this.announcer?.announce(targets);
  }

  /**
   * Asks for a pass; coalesced, one in flight, retried with back-off (runtime/pass-queue.ts).
   * `full`: read the kernel and diff (periodic repair); otherwise event-driven deltas may take
   * the fast path. Until start() has built the data plane, requests wait.
   */
  scheduleSync(full = false): void {
    if (this.stopped) return;
    this.passes.request(full ? 'full' : 'fast');
  }

  private async syncPass(fast: boolean): Promise<void> {
    await this.filters.sync(this.admitted(), this.keyed);
    await this.syncOverlay(fast);
    // After the overlay: `fwd to "vx0"` needs the device to exist.
    await this.filters.sync(this.admitted(), this.keyed, { withCapture: true });
  }

  private async syncOverlay(fast = false): Promise<void> {
    const alive = this.table.alive().map((p) => ({ ip: p.ip, groups: p.groups }));
    const desired = desiredState(this.spec, alive);
    let result;
    try {
      result = await this.reconciler.reconcile(desired, { prune: Date.now() >= this.graceUntil, fast });
    } catch (err) {
      const msg = errorMessage(err);
      if (/Unknown device type|unknown link kind/i.test(msg)) {
        throw new CapabilityError('create overlay device: this kernel has no VXLAN support; load the vxlan module on the node (modprobe vxlan)', { cause: err });
      }
      if (this.spec.replication === 'selective' && /mdb/i.test(msg) && /Invalid argument|not supported|Garbage|unknown/i.test(msg)) {
        // Old kernel (< 6.3) refuses VXLAN MDB entries: fall back to flooding, loudly.
        this.log.warn({ err: msg }, 'the kernel refused a VXLAN MDB entry: falling back to flooding every group to every peer');
        this.spec = { ...this.spec, replication: 'flood' };
        this.metrics.floodFallback.set(1);
        result = await this.reconciler.reconcile(desiredState(this.spec, alive));
      } else throw err;
    }
    this.metrics.reconciles.inc({ result: 'ok' });
    if (result.changes) {
      this.metrics.changes.inc(result.changes);
      this.log.info({ changes: result.changes, recreated: result.plan.recreate || undefined }, 'data plane converged');
    }
    if (result.changes || this.mac === ZERO_MAC) {
      // An adopted vx0 may need no change at all: its MAC must still be read before any STATE.
      const link = await this.ip.link(this.config.device);
      if (link?.mac && link.mac !== this.mac) {
        const first = this.mac === ZERO_MAC;
        this.mac = link.mac;
        if (!first) void this.announce();
      }
      if (result.plan.recreate || result.plan.ip.some((l) => l.startsWith('link add'))) {
        // The capture's `fwd to` points at the old device's index: re-apply it.
        this.filters.deviceRecreated();
      }
      if (result.plan.recreate || result.plan.ip.some((l) => l.startsWith('link add')))
        await this.checkRpFilter().catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'rp_filter check failed'));
    }
    this.entryCounts = { fdb: desired.fdb.length, mdb: desired.mdb.length, routes: desired.routes.length };
    this.metrics.fdbEntries.set(desired.fdb.length);
    this.metrics.mdbEntries.set(desired.mdb.length);
    const states = { pending: 0, alive: 0, left: 0, expired: 0, suspect: 0 };
    for (const p of this.table.status()) {
      states[p.state] += 1;
      if (p.suspect) states.suspect += 1;
    }
    for (const [state, n] of Object.entries(states)) this.metrics.peers.set({ state }, n);
  }

  /** The peers the allow-list admits (keyed: authenticated peers; during the grace, a previous agent's too). */
  private admitted(): string[] {
    return admittedPeers({
      keyed: this.keyed,
      listed: this.table.targets(),
      alive: this.table.alive().map((p) => p.ip),
      inherited: Date.now() < this.graceUntil ? this.inheritedAdmission : [],
    }).vxlan;
  }
}
