/**
 * Every Prometheus metric of the agent, in one place. Names: kmcast_<component>_<name>_<unit>,
 * counters end in _total, base units; no per-packet or per-source-port labels (cardinality).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PeerTableLimits } from '../membership/peers.js';
import { VERSION } from '../version.js';

export class AgentMetrics {
  readonly registry = new Registry();

  readonly buildInfo = new Gauge({
    name: 'kmcast_build_info',
    help: 'Always 1; labels carry the kmcast and Node.js versions.',
    labelNames: ['version', 'nodejs'] as const,
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: 'kmcast_agent_ready',
    help: '1 once the overlay device, routes and first peer resolution are in place.',
    registers: [this.registry],
  });
  readonly peers = new Gauge({
    name: 'kmcast_agent_peers',
    help: 'Known peers by state (pending: listed, not heard from; alive: replicated to; suspect: alive peers silent past the expiry, kept while listed).',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly localGroups = new Gauge({
    name: 'kmcast_agent_local_groups',
    help: 'IPv4 groups joined on the overlay device by this pod (224.0.0.1 excluded).',
    registers: [this.registry],
  });
  readonly fdbEntries = new Gauge({
    name: 'kmcast_overlay_fdb_entries',
    help: 'Flood (all-zero MAC) entries on the overlay device: one per alive peer.',
    registers: [this.registry],
  });
  readonly mdbEntries = new Gauge({
    name: 'kmcast_overlay_mdb_entries',
    help: 'Per-group replication (MDB) entries on the overlay device, catch-all included.',
    registers: [this.registry],
  });
  readonly floodFallback = new Gauge({
    name: 'kmcast_overlay_flood_fallback',
    help: '1 when selective replication is unavailable (kernel or iproute2 without VXLAN MDB) and every group floods.',
    registers: [this.registry],
  });
  readonly reconciles = new Counter({
    name: 'kmcast_overlay_reconciles_total',
    help: 'Data plane reconciliations by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly changes = new Counter({
    name: 'kmcast_overlay_changes_total',
    help: 'iproute2 commands applied to converge the data plane.',
    registers: [this.registry],
  });
  readonly commandErrors = new Counter({
    name: 'kmcast_iproute2_errors_total',
    help: 'Failed iproute2/nft commands (retried with backoff).',
    registers: [this.registry],
  });
  readonly unregisteredDropped = new Gauge({
    name: 'kmcast_overlay_unregistered_dropped_packets',
    help: 'Datagrams to groups nobody joined, dropped by the catch-all entry (overlay device TX carrier errors since it was created).',
    registers: [this.registry],
  });
  private controlSource: (() => Readonly<Record<string, number>>) | undefined;
  private readonly controlSeen: Record<string, number> = {};
  readonly controlMessages: Counter<'result'> = new Counter({
    name: 'kmcast_control_messages_total',
    help: 'Control datagrams received, by result (ok, bad_mac, replay, malformed, unknown_peer, spoofed, ...).',
    labelNames: ['result'] as const,
    registers: [this.registry],
    // The control channel keeps its own counters; bring the increments over at scrape time.
    collect: () => {
      for (const [result, n] of Object.entries(this.controlSource?.() ?? {})) {
        const delta = n - (this.controlSeen[result] ?? 0);
        if (delta > 0) this.controlMessages.inc({ result }, delta);
        this.controlSeen[result] = n;
      }
    },
  });
  readonly controlSent = new Counter({
    name: 'kmcast_control_sent_total',
    help: 'Control datagrams sent, by type.',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly dnsLookups = new Counter({
    name: 'kmcast_discovery_dns_lookups_total',
    help: 'Lookups of the headless Service, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly allowListPeers = new Gauge({
    name: 'kmcast_allowlist_peers',
    help: 'Source addresses admitted by the allow-list.',
    registers: [this.registry],
  });
  readonly allowListDropped = new Gauge({
    name: 'kmcast_allowlist_dropped_packets',
    help: 'Datagrams from non-peers dropped by the allow-list, by port (vxlan, control), since it was installed.',
    labelNames: ['port'] as const,
    registers: [this.registry],
  });
  readonly captureActive = new Gauge({
    name: 'kmcast_capture_active',
    help: '1 when the netdev egress chain moving multicast and broadcast sent out of the pod interface into the overlay is installed and verified.',
    registers: [this.registry],
  });
  readonly captureForwarded = new Gauge({
    name: 'kmcast_capture_forwarded_packets',
    help: 'Frames sent out of the pod interface and moved into the overlay, since the capture chain was installed.',
    registers: [this.registry],
  });
  readonly groupsByInterface = new Gauge({
    name: 'kmcast_membership_joined_groups',
    help: "Groups this pod's apps joined, by the interface they joined on (224.0.0.1 excluded).",
    labelNames: ['interface'] as const,
    registers: [this.registry],
  });
  readonly announceLatency = new Histogram({
    name: 'kmcast_membership_announce_seconds',
    help: 'Time from noticing a local join or leave to sending STATE to the peers.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });

  readonly unannouncedGroups = new Gauge({
    name: 'kmcast_membership_unannounced_groups',
    help: 'Local groups left out of our STATE because more are joined than the protocol carries (20,000): peers send us no traffic for them.',
    registers: [this.registry],
  });
  readonly keyReloads = new Counter({
    name: 'kmcast_membership_key_reloads_total',
    help: 'Changes of --key-file seen at run time, by result (ok: new keys in use; error: refused, old keys kept).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private limitsSource: (() => PeerTableLimits) | undefined;
  readonly truncatedGroups = new Gauge({
    name: 'kmcast_membership_truncated_groups',
    help: "Groups of peers' STATEs beyond the per-peer bound (no MDB entry towards them), all peers together.",
    registers: [this.registry],
    collect: () => {
      const l = this.limitsSource?.();
      if (l) this.truncatedGroups.set(l.groupsTruncated);
    },
  });
  private refusedSeen = 0;
  readonly refusedPeers: Counter = new Counter({
    name: 'kmcast_membership_refused_peers_total',
    help: 'Control datagrams from new senders refused because the bound on peers admitted by key alone (1024) is reached.',
    registers: [this.registry],
    collect: () => {
      const n = this.limitsSource?.().controlPeersRefused ?? 0;
      if (n > this.refusedSeen) this.refusedPeers.inc(n - this.refusedSeen);
      this.refusedSeen = n;
    },
  });

  /** Reports the peer table's bounds as kmcast_membership_truncated_groups and _refused_peers_total. */
  followPeerLimits(source: () => PeerTableLimits): void {
    this.limitsSource = source;
  }

  /** Reports the control channel's counters as kmcast_control_messages_total. */
  followControlCounters(source: () => Readonly<Record<string, number>>): void {
    this.controlSource = source;
  }

  constructor() {
    this.buildInfo.labels(VERSION, process.version).set(1);
    collectDefaultMetrics({ register: this.registry, prefix: 'kmcast_process_' });
  }
}
