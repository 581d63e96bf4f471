/**
 * One domain's state in the node agent (a --service: its device, peers, local members and their
 * joins) and the pure decisions over it: the groups announced, whether a member is programmed,
 * what to announce after a pass.
 */
import type { DnsDiscovery } from '../discovery/dns.js';
import { observedActive } from '../gateway/election.js';
import type { ExpiryClock } from '../membership/expiry.js';
import type { PeerTable } from '../membership/peers.js';
import { sortGroups } from '../net/groups.js';
import type { OverlaySpec } from '../overlay/desired.js';
import type { OverlayReconciler } from '../overlay/reconciler.js';
import type { NotProgrammedReason, PeerNodesStatus, PodProgramStatus } from './api.js';
import type { NodeDomain } from './config.js';
import type { LocalMember } from './members.js';
import type { ReadChain } from './nft.js';
import { deliveryDevices } from './delivery.js';
import { membersKey } from './members.js';
import { captureChainName, deliveryChainName, missedBy, missedByAll, vxChainName } from './nft.js';
import type { NodeDomainStatus } from './status-types.js';

export interface DomainRuntime {
  readonly domain: NodeDomain;
  readonly label: string;
  table: PeerTable;
  /** The domain's gateways (`gw:` label): who forwards to and from the outside network. */
  readonly gwLabel: string;
  gateways: PeerTable;
  readonly reconciler: OverlayReconciler;
  readonly dns: DnsDiscovery;
  spec: OverlaySpec | undefined;
  listed: string[];
  local: Map<string, LocalMember>;
  reasons: Map<string, NotProgrammedReason>;
  /** Pods on this node the domain lists but does not capture, and why (e.g. another domain lists them too). */
  refused: Map<string, RefusedMember>;
  groups: Map<string, string[]>;
  /** Member IP -> the global IPv6 addresses on its eth0 (read with its joins): what its IPv6 captures may come from. */
  ipv6: Map<string, string[]>;
  announced: boolean;
  /** When this node last began announcing the domain (ms since the epoch): its peer-node wait runs from then. */
  announcedAt?: number;
  announcedGroups: string;
  deviceOk: boolean;
  entries: { fdb: number; mdb: number };
  /** The peer-expiry rule's tick over `table`. */
  expiry: ExpiryClock;
  /** The alive peers (peerEntryKey) whose FDB/MDB entries the last successful entries pass programmed. */
  programmedPeers: ReadonlySet<string>;
}

/** A pod on this node a domain lists and refuses to capture. */
export type { RefusedMember } from './status-types.js';
import type { RefusedMember } from './status-types.js';

/** What an entries pass programmed towards a peer node: its IP and groups. */
export function peerEntryKey(ip: string, groups: readonly string[]): string {
  return `${ip}|${groups.join(',')}`;
}

/**
 * Whether the domain's peer nodes are known well enough for a local member's app to start: every
 * peer node `--peers-service`/`--peers` lists was heard (it announced its members, or answered
 * that it has none) and the entries towards the alive ones are programmed; or the bounded wait
 * (`readyBy`) passed, and the pod starts without the missing ones (`degraded`). Pure.
 */
export interface PeerNodesReadiness {
  /** Every listed peer node heard and programmed. */
  readonly settled: boolean;
  /** Not settled and the bounded wait passed: pods start without `waitingFor`. */
  readonly degraded: boolean;
  /** The bounded wait passed or was not needed: `programmed` may be true. */
  readonly ready: boolean;
  /** Peer nodes the domain lists. */
  readonly listed: number;
  /** Of them, heard and programmed. */
  readonly heard: number;
  /** Listed peer nodes not heard (never, or expired) or heard but not programmed yet. */
  readonly waitingFor: readonly string[];
  /** When the bounded wait ends (ms since the epoch). */
  readonly readyBy: number;
}

export function peerNodesReadiness(d: Pick<DomainRuntime, 'table' | 'programmedPeers'>, now: number, readyBy: number): PeerNodesReadiness {
  let listed = 0;
  const waitingFor: string[] = [];
  for (const p of d.table.status()) {
    if (!p.sources.includes('dns') && !p.sources.includes('static')) continue;
    listed++;
    const heard = p.state === 'left' || (p.state === 'alive' && d.programmedPeers.has(peerEntryKey(p.ip, p.groups)));
    if (!heard) waitingFor.push(p.ip);
  }
  const settled = waitingFor.length === 0;
  const degraded = !settled && now >= readyBy;
  return { settled, degraded, ready: settled || degraded, listed, heard: listed - waitingFor.length, waitingFor, readyBy };
}

/** The routable groups any local member joined, sorted. Pure. */
export function domainGroups(d: Pick<DomainRuntime, 'local' | 'groups'>): string[] {
  const all = new Set<string>();
  for (const ip of d.local.keys()) for (const g of d.groups.get(ip) ?? []) all.add(g);
  return sortGroups(all);
}

/**
 * A member is programmed when its capture chain forwards into the domain device, the domain's
 * VXLAN chain forwards into the delivery hop and the delivery chain copies to its veth, all
 * verified in the read-back. Pure.
 */
export function isProgrammed(d: Pick<DomainRuntime, 'domain' | 'deviceOk'>, m: LocalMember, chain: (name: string) => ReadChain | undefined): boolean {
  if (!d.deviceOk) return false;
  const cap = chain(captureChainName(m.veth));
  const vx = chain(vxChainName(d.domain.vni));
  const dl = chain(deliveryChainName(d.domain.vni));
  const hop = deliveryDevices(d.domain.vni);
  return cap !== undefined && !cap.stale && cap.fwd === d.domain.device && vx !== undefined && !vx.stale && vx.fwd === hop.in && dl !== undefined && !dl.stale && dl.dups.includes(m.veth);
}

/**
 * Per routable group, how many joined it: each local member that did, plus each alive peer node
 * that announces it (a node announces its members' groups, not how many). The gateway joins the
 * most wanted first when it cannot join all. Pure.
 */
export function demandByGroup(d: Pick<DomainRuntime, 'local' | 'groups' | 'table'>): Map<string, number> {
  const out = new Map<string, number>();
  for (const ip of d.local.keys()) for (const g of new Set(d.groups.get(ip) ?? [])) out.set(g, (out.get(g) ?? 0) + 1);
  for (const p of d.table.alive()) for (const g of new Set(p.groups)) out.set(g, (out.get(g) ?? 0) + 1);
  return out;
}

/** Routable groups joined by the domain's members on this node or any alive peer node, sorted. Pure. */
export function joinedAnywhere(d: Pick<DomainRuntime, 'local' | 'groups' | 'table'>): string[] {
  const all = new Set(domainGroups(d));
  for (const p of d.table.alive()) for (const g of p.groups) all.add(g);
  return sortGroups(all);
}

/**
 * The groups the node announces for the domain: its members' and, on the active gateway, the
 * routable outbound groups (`gateway`: undefined when this node is not the domain's active
 * gateway). Pure.
 */
export function announcedGroups(d: Pick<DomainRuntime, 'local' | 'groups'>, gateway: readonly string[] | undefined): string[] {
  return gateway === undefined || gateway.length === 0 ? domainGroups(d) : sortGroups(new Set([...domainGroups(d), ...gateway]));
}

/**
 * When the bounded wait for a domain's peer nodes ends (`readyBy` of peerNodesReadiness): one
 * expiry after this node began announcing the domain, and never before one expiry after the
 * agent's start (`agentBound`). A live peer answers a node's first STATE at once, but there is no
 * STATE before the domain's first local member: a bound counted from the agent's start alone had
 * long passed when an app's first pod appeared, and the pod started DEGRADED whenever its wait
 * asked between its capture being installed and the peers' answer (seen on the lab's Kubernetes
 * cluster, where the agents run long before the apps). Not announced yet: `now` plus one expiry,
 * so never degraded before the first STATE went out. Pure.
 */
export function peerWaitBound(agentBound: number, announcedAt: number | undefined, now: number, expiryMs: number): number {
  return Math.max(agentBound, (announcedAt ?? now) + expiryMs);
}

/**
 * What to send after a pass, and the announced state it leaves: STATE when the domain has local
 * members (or this node is its active gateway) and was not announced or its groups changed; LEAVE
 * when it was announced and has neither left. Pure.
 */
export function announcement(
  d: Pick<DomainRuntime, 'local' | 'groups' | 'announced' | 'announcedGroups'>,
  gateway?: readonly string[],
): { send: 'state' | 'leave' | undefined; announced: boolean; announcedGroups: string } {
  if (d.local.size > 0 || gateway !== undefined) {
    const groups = announcedGroups(d, gateway).join();
    if (!d.announced || groups !== d.announcedGroups) return { send: 'state', announced: true, announcedGroups: groups };
    return { send: undefined, announced: true, announcedGroups: groups };
  }
  if (d.announced) return { send: 'leave', announced: false, announcedGroups: '' };
  return { send: undefined, announced: false, announcedGroups: '' };
}

type Programmed = (m: LocalMember) => boolean;

/** The domain's active gateway as this node sees it: the lowest alive one. Pure. */
function gatewayOf(d: Pick<DomainRuntime, 'gateways'>): string | undefined {
  return observedActive(d.gateways.alive().map((p) => p.ip));
}

/** The domain's part of /status. Pure. */
export function domainStatus(d: DomainRuntime, programmed: Programmed, peerNodes: PeerNodesStatus, dl?: ReadChain, capture?: (veth: string) => ReadChain | undefined): NodeDomainStatus {
  const spoofedBy = (veth: string): number => capture?.(veth)?.spoofed ?? 0;
  const spoofed = [...d.local.values()].reduce((n, m) => n + spoofedBy(m.veth), 0);
  const overlongBy = (veth: string): number => capture?.(veth)?.overlongPackets ?? 0;
  const overlong = [...d.local.values()].reduce((n, m) => n + overlongBy(m.veth), 0);
  return {
    service: d.domain.service,
    vni: d.domain.vni,
    device: d.domain.device,
    label: d.label,
    listed: d.listed,
    localMembers: [...d.local.values()].map((m) => {
      const ok = programmed(m);
      return {
        podIp: m.ip,
        hostVeth: m.veth,
        netns: m.netns,
        groups: d.groups.get(m.ip) ?? [],
        programmed: ok,
        ...(ok ? {} : { reason: 'pending' as const }),
        ...(m.mtu !== undefined ? { mtu: m.mtu } : {}),
        ...(dl ? { oversize: missedBy(dl, m.veth) } : {}),
        ...(spoofedBy(m.veth) ? { spoofed: spoofedBy(m.veth) } : {}),
        ...(overlongBy(m.veth) ? { overlong: overlongBy(m.veth) } : {}),
      };
    }),
    ...(d.refused.size ? { refused: [...d.refused.values()] } : {}),
    announced: d.announced,
    groups: domainGroups(d),
    ...(gatewayOf(d) ? { gateway: gatewayOf(d) } : {}),
    peers: d.table.status(),
    peerNodes,
    entries: d.entries,
    ...(dl ? { oversize: missedByAll(dl) } : {}),
    ...(spoofed ? { spoofed } : {}),
    ...(overlong ? { overlong } : {}),
  };
}

/** The readiness as /v1/pods and /status show it. Pure. */
export function peerNodesStatus(r: PeerNodesReadiness, now: number, boundMs: number): PeerNodesStatus {
  return { listed: r.listed, heard: r.heard, waitingFor: r.waitingFor, degraded: r.degraded, boundMs, leftMs: Math.max(0, r.readyBy - now) };
}

/**
 * /pods/IP for a pod the domain lists (undefined when it does not list it): programmed once it is
 * captured and delivered locally AND the domain's peer nodes are ready (`peers`). Pure.
 */
export function listedPodStatus(
  d: Pick<DomainRuntime, 'domain' | 'listed' | 'local' | 'reasons' | 'groups' | 'refused'>,
  podIp: string,
  programmed: Programmed,
  peers: { readonly readiness: PeerNodesReadiness; readonly status: PeerNodesStatus },
): PodProgramStatus | undefined {
  if (!d.listed.includes(podIp)) return undefined;
  const m = d.local.get(podIp);
  const refused = d.refused.get(podIp);
  if (refused) return { podIp, programmed: false, reason: refused.reason, domain: refused.domains.join(','), hostVeth: refused.hostVeth };
  if (!m) return { podIp, programmed: false, reason: d.reasons.get(podIp) ?? 'pending', domain: d.domain.service };
  const base = { podIp, domain: d.domain.service, hostVeth: m.veth, groups: d.groups.get(podIp) ?? [] };
  if (!programmed(m)) return { ...base, programmed: false, reason: 'pending' };
  if (!peers.readiness.ready) return { ...base, programmed: false, reason: 'peers', peers: peers.status };
  return { ...base, programmed: true, peers: peers.status };
}

/**
 * A pass's member resolution applied to a domain: pods a second domain also lists are refused
 * (captured by neither, docs/node-mode.md "Members"), as are the later claimants of a member's IP;
 * the joins (and IPv6 addresses) of a member now in another namespace or on another veth are
 * dropped (they are read again from the new pod), and those of members gone. Returns what changed, for the log. Pure.
 */
export function assignMembers(
  d: Pick<DomainRuntime, 'domain' | 'local' | 'reasons' | 'refused' | 'groups' | 'ipv6'>,
  resolved: { local: Map<string, LocalMember>; reasons: Map<string, NotProgrammedReason>; conflicts: ReadonlyMap<string, readonly LocalMember[]> },
  /** Pod IP -> the domains listing it, for IPs more than one domain lists (members.ts, sharedClaims). */
  shared: ReadonlyMap<string, string[]>,
): { refusedChanged: boolean; membersChanged: boolean } {
  const { local, reasons, conflicts } = resolved;
  const refused = new Map<string, RefusedMember>();
  for (const [ip, claimants] of conflicts) {
    for (const c of claimants) refused.set(`${ip}@${c.veth}`, { podIp: ip, reason: 'ip_conflict', hostVeth: c.veth, domains: [d.domain.service] });
  }
  for (const [ip, m] of local) {
    const domains = shared.get(ip);
    if (!domains) continue;
    local.delete(ip);
    reasons.set(ip, 'multiple_domains');
    refused.set(ip, { podIp: ip, reason: 'multiple_domains', hostVeth: m.veth, domains });
  }
  const refusedChanged = [...refused.keys()].join() !== [...d.refused.keys()].join() && refused.size > 0;
  d.refused = refused;
  const membersChanged = membersKey(d.local.values()) !== membersKey(local.values());
  for (const [ip, prev] of d.local) {
    const now = local.get(ip);
    // Joins were read from another pod's namespace: read the new one's.
    if (now && (now.netns !== prev.netns || now.vethIndex !== prev.vethIndex)) {
      d.groups.delete(ip);
      d.ipv6.delete(ip);
    }
  }
  d.local = local;
  d.reasons = reasons;
  for (const ip of d.groups.keys()) if (!local.has(ip)) d.groups.delete(ip);
  for (const ip of d.ipv6.keys()) if (!local.has(ip)) d.ipv6.delete(ip);
  return { refusedChanged, membersChanged };
}
