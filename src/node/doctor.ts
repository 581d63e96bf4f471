/**
 * `kmcast doctor --node`: run on a node (or in the kmcast-node agent's pod), checks what node
 * mode needs there: CAP_NET_ADMIN, nftables netdev ingress with `dup to` and `fwd to` (checked by
 * the kernel with `nft --check`, nothing is installed), a readable /var/run/netns (the agent
 * opens each pod's namespace by its path), and the node agent's /status. As with the pod doctor
 * (src/sidecar/doctor.ts), gathering goes through narrow dependencies and `evaluateNode` is pure.
 */
import { readdir, readFile } from 'node:fs/promises';
import { errorMessage } from '../errors.js';
import { NftClient } from '../kernel/nft.js';
import type { Runner } from '../kernel/runner.js';
import type { CheckResult } from '../runtime/checks.js';
import { CAP_NET_ADMIN, capEffOf, hasCapability } from '../runtime/caps.js';
import { CAPTURE_SET } from './nft.js';
import { fetchNodeStatus, gatewayAddresses, peerEndpoint } from './status-format.js';
import type { NodeStatus } from './status-types.js';
import { carriedPacket, membersOverUnderlay } from './underlay.js';
import type { GatewayStatus } from '../gateway/status-types.js';

/** Where the container runtime binds pod network namespaces (the node agent mounts it). */
export const NETNS_DIR = '/var/run/netns';

export interface NodeDoctorOptions {
  /** The node agent's base URL, default http://127.0.0.1:9471. */
  readonly statusUrl: string;
  readonly netnsDir?: string;
}

export type Outcome<T> = ({ readonly ok: true } & T) | { readonly ok: false; readonly error: string };

export interface NodeDoctorFacts {
  /** Hex CapEff from /proc/self/status; null when unreadable. */
  readonly capEff: string | null;
  /** `nft --check` of the probe ruleset; `error` is nft's message (or why nft could not run). */
  readonly nftProbe: Outcome<Record<never, never>>;
  readonly netnsDir: Outcome<{ readonly entries: number }>;
  readonly agent: Outcome<{ readonly status: NodeStatus }>;
}

export interface NodeDoctorDeps {
  readonly runner: Runner;
  readFile(path: string): Promise<string>;
  readdir(path: string): Promise<string[]>;
  fetchStatus(url: string): Promise<NodeStatus>;
}

/**
 * A throwaway table in the shape the agent installs (an ingress chain at priority -500 whose rule
 * matches the capture set, counts, duplicates and forwards), on `lo`. Checked, never applied. Pure.
 */
export function nftProbeScript(table = 'kmcdoctor'): string {
  return [
    `table netdev ${table} {`,
    '  chain probe {',
    '    type filter hook ingress device "lo" priority -500; policy accept;',
    `    ip daddr ${CAPTURE_SET} counter dup to "lo" fwd to "lo"`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export async function gatherNodeFacts(o: NodeDoctorOptions, d: NodeDoctorDeps): Promise<NodeDoctorFacts> {
  const capEff = await d.readFile('/proc/self/status').then(capEffOf, () => null);
  const nftProbe = await new NftClient(d.runner).check(nftProbeScript()).then(
    (r) => (r.code === 0 ? { ok: true as const } : { ok: false as const, error: r.stderr.trim() || `exit code ${String(r.code)}` }),
    (err: unknown) => ({ ok: false as const, error: errorMessage(err) }),
  );
  const netnsDir = await d.readdir(o.netnsDir ?? NETNS_DIR).then(
    (names) => ({ ok: true as const, entries: names.length }),
    (err: NodeJS.ErrnoException) => ({ ok: false as const, error: err.code ?? err.message }),
  );
  const agent = await d.fetchStatus(o.statusUrl).then(
    (status) => ({ ok: true as const, status }),
    (err: unknown) => ({ ok: false as const, error: errorMessage(err) }),
  );
  return { capEff, nftProbe, netnsDir, agent };
}

/** Facts -> verdicts. Pure. */
export function evaluateNode(f: NodeDoctorFacts, o: NodeDoctorOptions): CheckResult[] {
  const out: CheckResult[] = [];
  const dir = o.netnsDir ?? NETNS_DIR;
  const admin = f.capEff !== null && hasCapability(f.capEff, CAP_NET_ADMIN);
  out.push(
    admin
      ? { id: 'node-capability', title: 'CAP_NET_ADMIN', status: 'OK', detail: 'held (the agent programs links, the MDB and nftables)' }
      : {
          id: 'node-capability',
          title: 'CAP_NET_ADMIN',
          status: 'FAIL',
          detail: f.capEff === null ? 'cannot read /proc/self/status' : `not in the effective set (CapEff ${f.capEff})`,
          fix: 'run on the node as root, or in the kmcast-node pod (its securityContext adds NET_ADMIN and SYS_ADMIN)',
        },
  );
  if (f.nftProbe.ok) {
    out.push({ id: 'node-nft-netdev', title: 'nftables netdev ingress, dup and fwd', status: 'OK', detail: 'the kernel accepts the capture chain (nft --check, nothing installed)' });
  } else {
    const noCap = /Operation not permitted/.test(f.nftProbe.error);
    out.push({
      id: 'node-nft-netdev',
      title: 'nftables netdev ingress, dup and fwd',
      status: 'FAIL',
      detail: `nft --check refused the capture chain: ${f.nftProbe.error.split('\n')[0] ?? ''}`,
      fix: noCap
        ? 'needs CAP_NET_ADMIN: run as root on the node or in the kmcast-node pod'
        : /not found|ENOENT|spawn/i.test(f.nftProbe.error)
          ? 'install nftables (the nft binary), e.g. apt-get install nftables'
          : 'the kernel needs nf_tables with the netdev family and nft_fwd_netdev/nft_dup_netdev (CONFIG_NF_TABLES_NETDEV, CONFIG_NFT_FWD_NETDEV, CONFIG_NFT_DUP_NETDEV); modprobe nft_fwd_netdev nft_dup_netdev',
    });
  }
  out.push(
    f.netnsDir.ok
      ? { id: 'node-netns-dir', title: `${dir} readable`, status: 'OK', detail: `${f.netnsDir.entries} namespaces listed` }
      : {
          id: 'node-netns-dir',
          title: `${dir} readable`,
          status: 'FAIL',
          detail: `cannot list it: ${f.netnsDir.error}`,
          fix:
            f.netnsDir.error === 'ENOENT'
              ? `mount the host's ${dir} into the kmcast-node pod (hostPath, mountPropagation: HostToContainer); without it the agent answers no_netns for every pod`
              : `run as root, or mount ${dir} readable into the kmcast-node pod`,
        },
  );
  if (!f.agent.ok) {
    out.push({
      id: 'node-agent',
      title: 'node agent /status',
      status: 'FAIL',
      detail: f.agent.error,
      fix: `start kmcast node (the kmcast-node DaemonSet, deploy/node) or give its --http address with --url; pods stay in kmcast wait until it answers`,
    });
    return out;
  }
  const st = f.agent.status;
  const members = st.domains.reduce((n, d) => n + d.localMembers.length, 0);
  const pending = [
    ...st.domains.flatMap((d) => d.localMembers.filter((m) => !m.programmed).map((m) => `${m.podIp} (${m.reason ?? 'pending'})`)),
    ...st.domains
      .filter((d) => d.peerNodes?.degraded && d.peerNodes.waitingFor.length)
      .map((d) => `peer nodes ${d.peerNodes!.waitingFor.map((ip) => peerEndpoint(ip, st.controlPort)).join(', ')} of ${d.service} not heard (members started without them)`),
  ];
  const problems = [...(st.ready ? [] : ['not ready']), ...(st.ruleset.installed ? [] : [`ruleset not installed${st.ruleset.lastError ? `: ${st.ruleset.lastError}` : ''}`])];
  out.push(
    problems.length === 0
      ? {
          id: 'node-agent',
          title: 'node agent /status',
          status: pending.length ? 'WARN' : 'OK',
          detail: `ready, ${st.domains.length} domains, ${members} local members, ${st.ruleset.chains} chains${pending.length ? `; not programmed: ${pending.join(', ')}` : ''}`,
          ...(pending.length
            ? {
                fix: 'kmcast status --node shows each member; not_member: the pod is in no --service answer; no_netns: mount /var/run/netns; peers / peer nodes not heard: is kmcast node running on those nodes with the same --key-file, and their UDP control port (7473) reachable?',
              }
            : {}),
        }
      : { id: 'node-agent', title: 'node agent /status', status: 'FAIL', detail: problems.join('; '), fix: 'read the agent log (kubectl logs -n kmcast-node ds/kmcast-node) and kmcast status --node' },
  );
  out.push(evaluateNodeKey(st));
  out.push(evaluateNodeLimits(st));
  out.push(evaluateOversize(st));
  if (st.gateway) out.push(evaluateGateway(st.gateway));
  return out;
}

/** Whether the node agents' control messages are signed. Pure. */
export function evaluateNodeKey(st: Pick<NodeStatus, 'authenticated' | 'insecureNoKey'>): CheckResult {
  if (st.authenticated) return { id: 'node-key', title: 'control messages signed', status: 'OK', detail: 'STATE/LEAVE are signed and verified with --key-file' };
  return {
    id: 'node-key',
    title: 'control messages signed',
    status: 'WARN',
    detail: `INSECURE: the agent runs without --key-file${st.insecureNoKey ? ' (--insecure-no-key)' : ''}: any sender with a listed node's source address, a pod masqueraded to its node's IP too, can replace this node's view of a domain's groups`,
    fix: 'kubectl -n kmcast-node create secret generic kmcast-node-key --from-literal=key=$(openssl rand -hex 32) and run every agent with --key-file (deploy/node mounts it)',
  };
}

/**
 * What the agent refused or could not carry: datagrams to the overlay/control ports from a pod or
 * a non-underlay interface, or from no peer, and groups beyond what one STATE carries. Pure.
 */
export function evaluateNodeLimits(st: NodeStatus): CheckResult {
  const dropped = st.allowList.dropped ?? {};
  const notes: string[] = [];
  if ((dropped.not_underlay ?? 0) > 0) {
    notes.push(
      `${dropped.not_underlay} datagrams to UDP ${st.vxlanPort}/${st.controlPort} came from a pod or an interface other than ${st.uplink} and were dropped (a pod forging overlay frames, or an app using those ports)`,
    );
  }
  if ((dropped.not_peer ?? 0) > 0) notes.push(`${dropped.not_peer} VXLAN datagrams from addresses that are no peer node were dropped`);
  const refused = st.domains.flatMap((d) => (d.refused ?? []).map((r) => `${r.podIp} (${r.reason}: ${r.domains.join(', ')}) in ${d.service}`));
  if (refused.length) notes.push(`pods refused: ${[...new Set(refused)].join('; ')}`);
  const unreadable = st.drops.control.unsupported_version ?? 0;
  if (unreadable > 0) {
    notes.push(
      `${unreadable} control datagrams in a protocol version this agent cannot read were dropped: another node runs a newer kmcast (one that announces IPv6 groups sends version 2), and this node does not see its groups`,
    );
  }
  const cut = st.domains.filter((d) => (d.unannouncedGroups ?? 0) > 0).map((d) => `${d.service}: ${d.unannouncedGroups}`);
  if (cut.length) notes.push(`joined groups beyond what one STATE carries, not announced (peers send them nothing): ${cut.join(', ')}`);
  const overlong = st.domains.filter((d) => (d.overlong ?? 0) > 0).map((d) => `${d.service}: ${d.overlong}`);
  if (overlong.length) notes.push(`frames longer than the IPv6 underlay carries, which reached no other node: ${overlong.join(', ')}`);
  if (st.underlayMtu !== undefined) {
    // The agent gives such pods a multicast route MTU that fits: only those without one are named.
    const over = [
      ...new Set(
        st.domains.flatMap((d) =>
          membersOverUnderlay(d.localMembers, st.nodeIp, st.underlayMtu!)
            .filter((m) => m.multicastMtu === undefined || m.multicastMtu > carriedPacket(st.nodeIp, st.underlayMtu!))
            .map((m) => `${m.podIp} (MTU ${m.mtu})`),
        ),
      ),
    ];
    if (over.length) {
      notes.push(
        `on this IPv6 underlay (MTU ${st.underlayMtu}) a frame crosses only up to ${carriedPacket(st.nodeIp, st.underlayMtu)} bytes of IP packet (VXLAN over IPv6 adds 70 and the kernel never fragments it), but ${over.join(', ')} may send longer ones and the agent has not (yet) set their IPv6 multicast route MTU (its log says why): those reach no other node; give the pods an MTU of at most ${carriedPacket(st.nodeIp, st.underlayMtu)} (the CNI's MTU setting)`,
      );
    }
  }
  return notes.length
    ? {
        id: 'node-limits',
        title: 'refused and uncarried traffic',
        status: 'WARN',
        detail: notes.join('; '),
        fix: "find the pod with kmcast status --node (its groups) or the node's conntrack/tcpdump on the pod veths; pods must not use the overlay and control ports; join fewer groups per domain; a pod listed by two domains: remove it from all but one Service (and check who can write their Endpoints/EndpointSlices); an unreadable protocol version: finish the DaemonSet rollout so every node runs the same kmcast; on an IPv6 underlay, a member the agent could not give its multicast route MTU (its log says why), or an app that fragments at its device's MTU (IPV6_PMTUDISC_OMIT): give the pods an MTU of at most the underlay's less 70 (the CNI's MTU setting)",
      }
    : { id: 'node-limits', title: 'refused and uncarried traffic', status: 'OK', detail: 'no datagram refused by the allow-list, every joined group announced' };
}

/** Frames from other nodes a member could not take: longer than its MTU. Pure. */
export function evaluateOversize(st: NodeStatus): CheckResult {
  const title = "datagrams longer than a member pod's MTU";
  const missed = st.domains.flatMap((d) => d.localMembers.filter((m) => (m.oversize ?? 0) > 0).map((m) => `${m.podIp} (MTU ${m.mtu ?? '?'}): ${m.oversize}`));
  const all = st.domains.reduce((n, d) => n + (d.oversize ?? 0), 0);
  if (missed.length === 0 && all === 0) return { id: 'node-oversize', title, status: 'OK', detail: 'every frame from other nodes fit every local member it was for' };
  return {
    id: 'node-oversize',
    title,
    status: 'WARN',
    detail: `not delivered (longer than the pod's MTU): ${[...missed, ...(all ? [`every local member: ${all}`] : [])].join(', ')}`,
    fix: "a member with a larger MTU (on another node) sent them: a veth cannot carry a frame longer than its MTU, and a datagram is not re-fragmented on the way; give every member pod of the domain the same MTU (the CNI's MTU setting, the smallest the nodes need)",
  };
}

/** The gateway's verdict from its /status part. Pure. */
export function evaluateGateway(g: GatewayStatus): CheckResult {
  const title = `gateway on ${g.interface} (${gatewayAddresses(g).join(', ') || 'no address'})`;
  if (!g.table.installed) {
    return {
      id: 'node-gateway',
      title,
      status: 'FAIL',
      detail: `gateway table not installed${g.table.lastError ? `: ${g.table.lastError}` : ''}`,
      fix: 'read the agent log; check that --gateway-interface exists and is up',
    };
  }
  const sum = (dir: 'in' | 'out', pick: (t: GatewayStatus['traffic'][number]) => number): number => g.traffic.filter((t) => t.direction === dir).reduce((n, t) => n + pick(t), 0);
  const drops = (reason: string): number => (g.drops.in[reason] ?? 0) + (g.drops.out[reason] ?? 0);
  const counts = `in ${sum('in', (t) => t.datagrams)} datagrams, out ${sum('out', (t) => t.datagrams)}; dropped: rate ${drops('rate')}, total ${drops('total')}, full ${drops('full')}, ttl ${drops('ttl')}, loop ${drops('loop')}${drops('overlong') ? `, overlong ${drops('overlong')}` : ''}`;
  if (!g.active) {
    const why = g.role === 'settling' ? 'settling after start (listening for the other gateways)' : `standby: ${g.activeGateway ?? '?'} is the active gateway`;
    return { id: 'node-gateway', title, status: g.role === 'settling' ? 'WARN' : 'OK', detail: why };
  }
  const warnings: string[] = [];
  if (g.joinFailures.length) warnings.push(`joins failed: ${g.joinFailures.map((f) => `${f.group} (${f.error})`).join(', ')}`);
  if (drops('rate') > 0) warnings.push(`datagrams over --gateway-rate ${g.rate}/s per group were dropped`);
  if (drops('total') > 0) warnings.push(`datagrams over --gateway-rate-total ${g.rateTotal}/s (all groups of a direction) were dropped`);
  if (drops('overlong') > 0)
    warnings.push(
      `${drops('overlong')} inbound datagram frame(s) longer than the IPv6 underlay carries (its MTU - 70; VXLAN over IPv6 is never fragmented) did not cross: lower the LAN senders' datagram size (or the LAN MTU), or raise the underlay MTU`,
    );
  if (drops('full') > 0) warnings.push('datagrams of more distinct groups than the per-group meter holds (65536 in 60 s) were dropped: a storm over a range');
  if (g.unjoined.count > 0)
    warnings.push(
      `${g.unjoined.count} inbound group(s) members joined are not joined on ${g.interface} (over --gateway-max-joins ${g.unjoined.max}): ${g.unjoined.groups.join(',')}${g.unjoined.count > g.unjoined.groups.length ? ',...' : ''}`,
    );
  return {
    id: 'node-gateway',
    title,
    status: warnings.length ? 'WARN' : 'OK',
    detail: `active; joined ${g.joined.length ? g.joined.join(',') : 'no group (no member joined an inbound group yet)'}; ${counts}${warnings.length ? `; ${warnings.join('; ')}` : ''}`,
    ...(warnings.length
      ? {
          fix: 'raise --gateway-rate or --gateway-rate-total if the drops are a real feed; raise --gateway-max-joins or have members join fewer groups; a failed join names the kernel error (interface down)',
        }
      : {}),
  };
}

export function systemNodeDoctorDeps(runner: Runner): NodeDoctorDeps {
  return {
    runner,
    readFile: async (path) => await readFile(path, 'utf8'),
    readdir: async (path) => await readdir(path),
    fetchStatus: async (url) => await fetchNodeStatus(url, 1500),
  };
}
