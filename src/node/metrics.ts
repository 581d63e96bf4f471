/**
 * Every Prometheus metric of the node agent. Names: kmcast_node_<name>_<unit>, counters end in
 * _total; labels are bounded (domain = a configured --service, never a pod or a peer).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { allowListDrops } from '../overlay/allowlist.js';
import { VERSION } from '../version.js';
import type { PeerNodesStatus } from './api.js';
import type { DomainRuntime } from './domain.js';
import type { LocalMember } from './members.js';
import type { ReadChain } from './nft.js';
import { captureChainName, deliveryChainName, missedBy } from './nft.js';

export class NodeMetrics {
  readonly registry = new Registry();
  readonly buildInfo = new Gauge({
    name: 'kmcast_build_info',
    help: 'Always 1; labels carry the kmcast and Node.js versions.',
    labelNames: ['version', 'nodejs'] as const,
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: 'kmcast_node_ready',
    help: '1 once every domain device and the ruleset were installed and read back, and every domain with local members heard its peer nodes (or waited one expiry).',
    registers: [this.registry],
  });
  readonly localMembers = new Gauge({
    name: 'kmcast_node_local_members',
    help: 'Member pods on this node, by domain and whether they are programmed.',
    labelNames: ['domain', 'programmed'] as const,
    registers: [this.registry],
  });
  readonly peers = new Gauge({ name: 'kmcast_node_peers', help: 'Peer node agents by domain and state.', labelNames: ['domain', 'state'] as const, registers: [this.registry] });
  readonly peerNodesUnheard = new Gauge({
    name: 'kmcast_node_peer_nodes_unheard',
    help: 'Peer nodes --peers-service/--peers list that this agent has not heard (or not programmed yet), by domain; after the bounded wait, local members start without them.',
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });
  readonly fdbEntries = new Gauge({
    name: 'kmcast_node_fdb_entries',
    help: 'Flood entries on the domain device: one per alive member node.',
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });
  readonly mdbEntries = new Gauge({
    name: 'kmcast_node_mdb_entries',
    help: 'Per-group replication entries on the domain device, catch-all included.',
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });
  readonly captured = new Gauge({
    name: 'kmcast_node_captured_packets',
    help: 'Packets taken off member host veths (capture chain counters; reset when the ruleset is replaced).',
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });
  readonly delivered = new Gauge({
    name: 'kmcast_node_received_packets',
    help: 'Packets decapsulated on the domain device and copied to local members (reset when the ruleset is replaced).',
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });
  readonly oversize = new Gauge({
    name: 'kmcast_node_oversize_packets',
    help: 'Frames from other nodes not delivered to a local member because they are longer than its MTU, summed over members (reset when the ruleset is replaced).',
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });
  readonly joinReads = new Counter({
    name: 'kmcast_node_join_reads_total',
    help: "Reads of a member namespace's joins (ip maddr), by cause: event (coalesced per namespace) or resync.",
    labelNames: ['cause'] as const,
    registers: [this.registry],
  });
  readonly joinEventsLost = new Counter({
    name: 'kmcast_node_join_events_lost_total',
    help: 'Times the join listener lost maddress events (a flood: its netlink socket overran); every member is then re-read.',
    registers: [this.registry],
  });
  readonly spoofed = new Gauge({
    name: 'kmcast_node_spoofed_packets',
    help: 'Multicast and broadcast datagrams local members sent with another source address than their own, dropped at capture (reset when the ruleset is replaced).',
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });
  readonly keyReloads = new Counter({
    name: 'kmcast_node_key_reloads_total',
    help: 'Changes of --key-file seen at run time, by result (ok: new keys in use; error: refused, old keys kept).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly syncs = new Counter({ name: 'kmcast_node_syncs_total', help: 'Full data plane passes by result.', labelNames: ['result'] as const, registers: [this.registry] });
  readonly rulesetApplies = new Counter({
    name: 'kmcast_node_ruleset_applies_total',
    help: 'nftables ruleset replacements by result (ok: applied and read back).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly controlReceived = new Gauge({
    name: 'kmcast_node_control_received_datagrams',
    help: 'Control datagrams received since start, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly controlSent = new Gauge({
    name: 'kmcast_node_control_sent_datagrams',
    help: 'Control datagrams sent since start, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly unannouncedGroups = new Gauge({
    name: 'kmcast_node_unannounced_groups',
    help: "Groups the domain's local members joined beyond what one STATE may carry: not announced, so peers send them nothing.",
    labelNames: ['domain'] as const,
    registers: [this.registry],
  });
  readonly refusedPods = new Gauge({
    name: 'kmcast_node_refused_pods',
    help: "Pods on this node the domain lists but does not capture, by reason (multiple_domains: another domain lists the pod too; ip_conflict: a second veth claims a member's IP, refused).",
    labelNames: ['domain', 'reason'] as const,
    registers: [this.registry],
  });
  readonly allowListDropped = new Gauge({
    name: 'kmcast_node_allowlist_dropped_packets',
    help: 'Datagrams to the overlay or control port dropped by the allow-list, by reason (not_peer, control_not_peer, not_underlay: from a pod or an interface other than the underlay).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    this.buildInfo.labels(VERSION, process.version).set(1);
    collectDefaultMetrics({ register: this.registry, prefix: 'kmcast_node_' });
  }

  /** A domain's gauges, from the ruleset as read back (its chain counters) and its state. */
  observeDomain(d: DomainRuntime, back: ReadonlyMap<string, ReadChain> | undefined, programmed: (m: LocalMember) => boolean, peerNodes?: PeerNodesStatus): void {
    const service = d.domain.service;
    let captured = 0;
    let ok = 0;
    let oversize = 0;
    let spoofed = 0;
    const dl = back?.get(deliveryChainName(d.domain.vni));
    for (const m of d.local.values()) {
      captured += back?.get(captureChainName(m.veth))?.packets ?? 0;
      spoofed += back?.get(captureChainName(m.veth))?.spoofed ?? 0;
      oversize += dl ? missedBy(dl, m.veth) : 0;
      if (programmed(m)) ok++;
    }
    this.captured.labels(service).set(captured);
    this.delivered.labels(service).set(dl?.packets ?? 0);
    this.oversize.labels(service).set(oversize);
    this.spoofed.labels(service).set(spoofed);
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
