/**
 * Every Prometheus metric of the node agent. Names: kmcast_node_<name>_<unit>, counters end in
 * _total; labels are bounded (domain = a configured --service, never a pod or a peer). The
 * registry, build info, process metrics, readiness and key reloads are the shared runtime's
 * (src/runtime/metrics.ts).
 */
import { allowListDrops } from '../overlay/allowlist.js';
import { AgentMetricsBase } from '../runtime/metrics.js';
import type { PeerNodesStatus } from './api.js';
import type { DomainRuntime } from './domain.js';
import type { LocalMember } from './members.js';
import type { ReadChain } from './nft.js';
import { captureChainName, deliveryChainName, missedBy } from './nft.js';

export class NodeMetrics extends AgentMetricsBase {
  constructor() {
    super({
      processPrefix: 'kmcast_node_',
      ready: {
        name: 'kmcast_node_ready',
        help: '1 once every domain device and the ruleset were installed and read back, and every domain with local members heard its peer nodes (or waited one expiry).',
      },
      keyReloads: 'kmcast_node_key_reloads_total',
    });
  }

  readonly localMembers = this.gauge('kmcast_node_local_members', 'Member pods on this node, by domain and whether they are programmed.', ['domain', 'programmed']);
  readonly peers = this.gauge('kmcast_node_peers', 'Peer node agents by domain and state.', ['domain', 'state']);
  readonly peerNodesUnheard = this.gauge(
    'kmcast_node_peer_nodes_unheard',
    'Peer nodes --peers-service/--peers list that this agent has not heard (or not programmed yet), by domain; after the bounded wait, local members start without them.',
    ['domain'],
  );
  readonly fdbEntries = this.gauge('kmcast_node_fdb_entries', 'Flood entries on the domain device: one per alive member node.', ['domain']);
  readonly mdbEntries = this.gauge('kmcast_node_mdb_entries', 'Per-group replication entries on the domain device, catch-all included.', ['domain']);
  readonly captured = this.gauge('kmcast_node_captured_packets', 'Packets taken off member host veths (capture chain counters; reset when the ruleset is replaced).', ['domain']);
  readonly delivered = this.gauge('kmcast_node_received_packets', 'Packets decapsulated on the domain device and copied to local members (reset when the ruleset is replaced).', ['domain']);
  readonly oversize = this.gauge(
    'kmcast_node_oversize_packets',
    'Frames from other nodes not delivered to a local member because they are longer than its MTU, summed over members (reset when the ruleset is replaced).',
    ['domain'],
  );
  readonly joinReads = this.counter('kmcast_node_join_reads_total', "Reads of a member namespace's joins (ip maddr), by cause: event (coalesced per namespace) or resync.", ['cause']);
  readonly joinEventsLost = this.counter('kmcast_node_join_events_lost_total', 'Times the join listener lost maddress events (a flood: its netlink socket overran); every member is then re-read.');
  readonly spoofed = this.gauge(
    'kmcast_node_spoofed_packets',
    'Multicast and broadcast datagrams local members sent with another source address than their own, dropped at capture (reset when the ruleset is replaced).',
    ['domain'],
  );
  readonly overlong = this.gauge(
    'kmcast_node_overlong_packets',
    'IPv6 underlay only: frames local members sent longer than the underlay carries (its MTU - 70; the kernel never fragments VXLAN over IPv6), which reached no other node (reset when the ruleset is replaced).',
    ['domain'],
  );
  readonly syncs = this.counter('kmcast_node_syncs_total', 'Full data plane passes by result.', ['result']);
  readonly rulesetApplies = this.counter('kmcast_node_ruleset_applies_total', 'nftables ruleset replacements by result (ok: applied and read back).', ['result']);
  readonly controlReceived = this.gauge('kmcast_node_control_received_datagrams', 'Control datagrams received since start, by result.', ['result']);
  readonly controlSent = this.gauge('kmcast_node_control_sent_datagrams', 'Control datagrams sent since start, by outcome.', ['outcome']);

  readonly unannouncedGroups = this.gauge('kmcast_node_unannounced_groups', "Groups the domain's local members joined beyond what one STATE may carry: not announced, so peers send them nothing.", [
    'domain',
  ]);
  readonly refusedPods = this.gauge(
    'kmcast_node_refused_pods',
    "Pods on this node the domain lists but does not capture, by reason (multiple_domains: another domain lists the pod too; ip_conflict: a second veth claims a member's IP, refused).",
    ['domain', 'reason'],
  );
  readonly allowListDropped = this.gauge(
    'kmcast_node_allowlist_dropped_packets',
    'Datagrams to the overlay or control port dropped by the allow-list, by reason (not_peer, control_not_peer, not_underlay: from a pod or an interface other than the underlay).',
    ['reason'],
  );

  /** A domain's gauges, from the ruleset as read back (its chain counters) and its state. */
  observeDomain(d: DomainRuntime, back: ReadonlyMap<string, ReadChain> | undefined, programmed: (m: LocalMember) => boolean, peerNodes?: PeerNodesStatus): void {
    const service = d.domain.service;
    let captured = 0;
    let ok = 0;
    let oversize = 0;
    let spoofed = 0;
    let overlong = 0;
    const dl = back?.get(deliveryChainName(d.domain.vni));
    for (const m of d.local.values()) {
      captured += back?.get(captureChainName(m.veth))?.packets ?? 0;
      spoofed += back?.get(captureChainName(m.veth))?.spoofed ?? 0;
      overlong += back?.get(captureChainName(m.veth))?.overlongPackets ?? 0;
      oversize += dl ? missedBy(dl, m.veth) : 0;
      if (programmed(m)) ok++;
    }
    this.captured.labels(service).set(captured);
    this.delivered.labels(service).set(dl?.packets ?? 0);
    this.oversize.labels(service).set(oversize);
    this.spoofed.labels(service).set(spoofed);
    this.overlong.labels(service).set(overlong);
    this.localMembers.labels(service, 'true').set(ok);
    this.localMembers.labels(service, 'false').set(d.local.size - ok);
    for (const reason of ['multiple_domains', 'ip_conflict'] as const) this.refusedPods.labels(service, reason).set([...d.refused.values()].filter((r) => r.reason === reason).length);
    const counts: Record<string, number> = { pending: 0, alive: 0, left: 0, expired: 0 };
    for (const p of d.table.status()) counts[p.state] = (counts[p.state] ?? 0) + 1;
    for (const [state, n] of Object.entries(counts)) this.peers.labels(service, state).set(n);
    if (peerNodes) this.peerNodesUnheard.labels(service).set(peerNodes.waitingFor.length);
  }

  /** The allow-list's drop counters (kernel counters: reset when its table is replaced). */
  observeAllowList(dropped: Readonly<Record<string, number>>): void {
    for (const [reason, n] of Object.entries(allowListDrops(dropped))) this.allowListDropped.labels(reason).set(n);
  }

  /** The control socket's counters since start. */
  observeControl(c: { readonly counters: Readonly<Record<string, number>>; readonly sendCounters: { readonly sent: number; readonly failed: number } }): void {
    for (const [result, n] of Object.entries(c.counters)) this.controlReceived.labels(result).set(n);
    this.controlSent.labels('sent').set(c.sendCounters.sent);
    this.controlSent.labels('failed').set(c.sendCounters.failed);
  }
}
