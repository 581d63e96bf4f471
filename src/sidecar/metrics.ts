/**
 * Every Prometheus metric of the agent, in one place. Names: kmcast_<component>_<name>_<unit>,
 * counters end in _total, base units; no per-packet or per-source-port labels (cardinality). The
 * registry, build info, process metrics, readiness and key reloads are the shared runtime's
 * (src/runtime/metrics.ts).
 */
import type { PeerTableLimits } from '../membership/peers.js';
import { AgentMetricsBase, CounterDeltas } from '../runtime/metrics.js';

export class AgentMetrics extends AgentMetricsBase {
  constructor() {
    super({
      processPrefix: 'kmcast_process_',
      ready: { name: 'kmcast_agent_ready', help: '1 once the overlay device, routes and first peer resolution are in place.' },
      keyReloads: 'kmcast_membership_key_reloads_total',
    });
  }

  readonly peers = this.gauge('kmcast_agent_peers', 'Known peers by state (pending: listed, not heard from; alive: replicated to; suspect: alive peers silent past the expiry, kept while listed).', [
    'state',
  ]);
  readonly localGroups = this.gauge('kmcast_agent_local_groups', 'IPv4 groups joined on the overlay device by this pod (224.0.0.1 excluded).');
  readonly fdbEntries = this.gauge('kmcast_overlay_fdb_entries', 'Flood (all-zero MAC) entries on the overlay device: one per alive peer.');
  readonly mdbEntries = this.gauge('kmcast_overlay_mdb_entries', 'Per-group replication (MDB) entries on the overlay device, catch-all included.');
  readonly floodFallback = this.gauge('kmcast_overlay_flood_fallback', '1 when selective replication is unavailable (kernel or iproute2 without VXLAN MDB) and every group floods.');
  readonly reconciles = this.counter('kmcast_overlay_reconciles_total', 'Data plane reconciliations by result.', ['result']);
  readonly changes = this.counter('kmcast_overlay_changes_total', 'iproute2 commands applied to converge the data plane.');
  readonly commandErrors = this.counter('kmcast_iproute2_errors_total', 'Failed iproute2/nft commands (retried with backoff).');
  readonly unregisteredDropped = this.gauge(
    'kmcast_overlay_unregistered_dropped_packets',
    'Datagrams to groups nobody joined, dropped by the catch-all entry (overlay device TX carrier errors since it was created).',
  );
  readonly underlayTooLong = this.gauge(
    'kmcast_overlay_underlay_too_long_packets',
    "IPv6 underlay only: the pod's Ip6FragFails, VXLAN packets longer than the pod interface that the kernel never fragments over IPv6, lost (an app that fragments at eth0's own MTU, IPV6_PMTUDISC_OMIT, despite eth0's multicast route at vx0's MTU).",
  );
  private controlSource: (() => Readonly<Record<string, number>>) | undefined;
  private readonly controlDeltas = new CounterDeltas();
  readonly controlMessages = this.counter(
    'kmcast_control_messages_total',
    'Control datagrams received, by result (ok, bad_mac, replay, malformed, unknown_peer, spoofed, ...).',
    ['result'],
    // The control channel keeps its own counters; bring the increments over at scrape time.
    () => {
      for (const [result, n] of this.controlDeltas.take(this.controlSource?.() ?? {})) this.controlMessages.inc({ result }, n);
    },
  );
  readonly controlSent = this.counter('kmcast_control_sent_total', 'Control datagrams sent, by type.', ['type']);
  readonly dnsLookups = this.counter('kmcast_discovery_dns_lookups_total', 'Lookups of the headless Service, by result.', ['result']);
  readonly allowListPeers = this.gauge('kmcast_allowlist_peers', 'Source addresses admitted by the allow-list.');
  readonly allowListDropped = this.gauge('kmcast_allowlist_dropped_packets', 'Datagrams from non-peers dropped by the allow-list, by port (vxlan, control), since it was installed.', ['port']);
  readonly captureActive = this.gauge(
    'kmcast_capture_active',
    '1 when the netdev egress chain moving multicast and broadcast sent out of the pod interface into the overlay is installed and verified.',
  );
  readonly captureForwarded = this.gauge('kmcast_capture_forwarded_packets', 'Frames sent out of the pod interface and moved into the overlay, since the capture chain was installed.');
  readonly groupsByInterface = this.gauge('kmcast_membership_joined_groups', "Groups this pod's apps joined, by the interface they joined on (224.0.0.1 excluded).", ['interface']);
  readonly announceLatency = this.histogram(
    'kmcast_membership_announce_seconds',
    'Time from noticing a local join or leave to sending STATE to the peers.',
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
  );
  readonly unannouncedGroups = this.gauge(
    'kmcast_membership_unannounced_groups',
    'Local groups left out of our STATE because more are joined than the protocol carries (20,000): peers send us no traffic for them.',
  );
  private limitsSource: (() => PeerTableLimits) | undefined;
  readonly truncatedGroups = this.gauge('kmcast_membership_truncated_groups', "Groups of peers' STATEs beyond the per-peer bound (no MDB entry towards them), all peers together.", [], () => {
    const l = this.limitsSource?.();
    if (l) this.truncatedGroups.set(l.groupsTruncated);
  });
  private readonly refusedDeltas = new CounterDeltas();
  readonly refusedPeers = this.counter(
    'kmcast_membership_refused_peers_total',
    'Control datagrams from new senders refused because the bound on peers admitted by key alone (1024) is reached.',
    [],
    () => {
      for (const [, n] of this.refusedDeltas.take({ refused: this.limitsSource?.().controlPeersRefused ?? 0 })) this.refusedPeers.inc(n);
    },
  );

  /** Reports the peer table's bounds as kmcast_membership_truncated_groups and _refused_peers_total. */
  followPeerLimits(source: () => PeerTableLimits): void {
    this.limitsSource = source;
  }

  /** Reports the control channel's counters as kmcast_control_messages_total. */
  followControlCounters(source: () => Readonly<Record<string, number>>): void {
    this.controlSource = source;
  }
}
