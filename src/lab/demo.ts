/**
 * `kmcast demo`: the whole story on a simulated cluster. Builds a mixed lab, shows that multicast
 * and broadcast do not cross nodes, starts the agents, shows that every pod now receives every
 * other pod's multicast, link-local multicast and broadcast exactly once, and tears down.
 * `mode: 'sidecar'` runs an agent in every pod; `mode: 'node'` one node agent per node, with apps
 * that hold no capability (demo-node.ts).
 */
import { IpClient } from '../kernel/ip.js';
import type { Runner } from '../kernel/runner.js';
import { labDown, labUp, setServiceMembers } from './lab.js';
import { DEFAULT_SERVICE } from './plan.js';
import { DEMO_NODE_DEVICE, nodeStatus, nodesReplicate, startNodeAgents, waitEveryPod } from './demo-node.js';
import type { AgentHandle, NodeAgentHandle } from './process.js';
import { podFetch, startAgentProcess, waitFor } from './process.js';
import type { Matrix, TrafficKind } from './traffic.js';
import { formatMatrix, matrixCells, TRAFFIC_KINDS, TRAFFIC_KINDS6, trafficMatrix } from './traffic.js';
import type { Lab, LabPod, NodeStyle } from './types.js';

export interface DemoOptions {
  readonly id: string;
  readonly nodes: readonly NodeStyle[];
  readonly podsPerNode: number;
  readonly mtu: number;
  /** Leave the lab and agents running at the end (`kmcast lab down` removes them). */
  readonly keep: boolean;
  /** 'sidecar' (default): an agent in every pod; 'node': one node agent per node, unprivileged apps. */
  readonly mode?: DemoMode;
  readonly runner: Runner;
  readonly print: (line?: string) => void;
  /** A dual-stack lab and IPv6 traffic beside IPv4 (node mode only). */
  readonly ipv6?: boolean;
  /** Print the next commands with `sudo` (default: when SUDO_USER says the demo ran under sudo). */
  readonly sudo?: boolean;
}

export type DemoMode = 'sidecar' | 'node';

export interface DemoResult {
  readonly ok: boolean;
  readonly baselineCrossNode: number;
  readonly wrongCells: number;
  readonly seconds: number;
}

const KIND_TITLE: Record<TrafficKind, string> = {
  multicast: 'multicast to 239.1.1.1',
  linklocal: 'link-local multicast to 224.0.0.251 (mDNS)',
  broadcast: 'broadcast to 255.255.255.255',
  multicast6: 'IPv6 multicast to ff05::1:3',
  linklocal6: 'IPv6 link-local multicast to ff02::fb (mDNS)',
};

/** Cells between pods of different nodes, summed. Pure. */
export function crossNodeTotal(m: Matrix, kind: TrafficKind, nodeOf: ReadonlyMap<string, number>): number {
  return matrixCells(m, kind)
    .filter((c) => nodeOf.get(c.from) !== nodeOf.get(c.to))
    .reduce((sum, c) => sum + c.count, 0);
}

/** Off-diagonal cells whose count is not exactly `sent`. Pure. */
export function wrongCells(m: Matrix): { kind: TrafficKind; from: string; to: string; count: number }[] {
  return m.kinds.flatMap((kind) => matrixCells(m, kind).filter((c) => c.count !== m.sent).map((c) => ({ kind, ...c })));
}

/**
 * The demo's closing "where to look next" lines. In a checkout there is no `kmcast` on PATH, so
 * the commands go through npx, which runs the checkout's own bin (package.json "bin"); `sudo`
 * is printed only when the demo itself ran under sudo. Pure.
 */
export function nextSteps(o: { id: string; keep: boolean; sudo: boolean; mode?: DemoMode }): string[] {
  const k = `${o.sudo ? 'sudo ' : ''}npx kmcast`;
  const id = o.keep ? ` --id ${o.id}` : '';
  const pad = (cmd: string, why: string): string => `  ${cmd.padEnd(54)} # ${why}`;
  if (o.mode === 'node') {
    const inNode1 = `${o.sudo ? 'sudo ' : ''}ip netns exec kmc${o.id}-n1`;
    return [
      o.keep ? pad(`${k} lab down${id}`, 'remove it when done') : pad(`${k} demo --mode node --keep`, 'the same, left running to explore'),
      pad(`${inNode1} nft list table netdev kmcast-node`, 'capture and delivery on node 1'),
      pad(`${inNode1} bridge mdb show dev ${DEMO_NODE_DEVICE}`, 'which nodes get which group'),
      pad(`${inNode1} npx kmcast status --node`, "node 1's agent: members, peers, chains"),
      pad(`npx kmcast inject --mode node -f app.yaml`, 'the init container for your Deployment'),
      '  docs/node-mode.md, docs/kubernetes.md',
    ];
  }
  return [
    o.keep ? pad(`${k} lab down${id}`, 'remove it when done') : pad(`${k} demo --keep`, 'the same, left running to explore'),
    pad(`${k} lab exec${id} n1p1 -- bridge fdb show dev vx0`, "flood list; 'bridge mdb show' for groups"),
    pad(`${k} status --pod n1p1 --lab-id ${o.id}`, "an agent's peers, groups and drops"),
    pad(`${k} lab matrix${id}`, 'this traffic check, on demand'),
    pad(`npx kmcast inject -f app.yaml`, 'the same sidecar for your Deployment'),
    '  docs/architecture.md, docs/protocol.md, docs/kubernetes.md',
  ];
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = Date.now();
  const { print, runner } = o;
  const step = (n: number, text: string): void => print(`\n[${n}/5] ${text}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const mode = o.mode ?? 'sidecar';
  const agents: Array<AgentHandle | NodeAgentHandle> = [];
  const apps = mode === 'node' ? ('unprivileged' as const) : ('root' as const);
  // The gateway demo (demo-gateway.ts) carries IPv4 only: the CLI refuses --ipv6 there.
  const kinds = o.ipv6 ? [...TRAFFIC_KINDS, ...TRAFFIC_KINDS6] : TRAFFIC_KINDS;
  let lab: Lab | undefined;
  await labDown(runner, { id: o.id }); // a previous demo that was killed
  try {
    step(1, `Building a simulated cluster: ${o.nodes.length} nodes (${o.nodes.join(', ')}), ${o.podsPerNode} pods each`);
    print('      Each node and pod is a Linux network namespace. A router joins the nodes and forwards');
    print('      unicast only, like a cloud VPC: multicast is never routed between nodes.');
    print('      calico nodes: pods are /32 behind proxy-ARP; bridge nodes: pods share a node bridge (Flannel-like).');
    lab = await labUp(
      { id: o.id, nodes: o.nodes, podsPerNode: o.podsPerNode, mtu: o.mtu, service: DEFAULT_SERVICE, ...(o.ipv6 ? { ipv6: true } : {}) },
      { runner, onProgress: (msg) => print(`      … ${msg}`) },
    );
    await setServiceMembers(lab, lab.pods.flatMap((p) => [p.ip, ...(p.ip6 ? [p.ip6] : [])]));
    for (const node of lab.nodes) {
      const pods = lab.pods.filter((p) => p.node === node.index);
      print(`      node ${node.index} (${node.style}): ${pods.map((p) => `${p.name} ${p.ip}${p.ip6 ? ` ${p.ip6}` : ''}`).join(', ')}`);
    }
    if (o.ipv6) print('      Dual-stack: every pod also has an IPv6 address, routed between nodes like IPv4 (IPv6 multicast is not).');
    const nodeOf = new Map(lab.pods.map((p) => [p.name, p.node]));

    step(2, 'Baseline, no kmcast: every pod sends 3 datagrams of each kind; python3 receivers count them');
    if (mode === 'node') print('      The apps run as uid 65534 with no capability; receivers join on eth0 by interface index.');
    const base = await trafficMatrix(lab, { apps, kinds });
    let baselineCrossNode = 0;
    for (const kind of base.kinds) {
      const cross = crossNodeTotal(base, kind, nodeOf);
      baselineCrossNode += cross;
      print(`\n  ${KIND_TITLE[kind]}: ${cross} datagrams crossed nodes`);
      print(indent(formatMatrix(base, kind)));
    }
    print('\n      Only pods sharing a bridge hear each other; across nodes nothing arrives. This is what');
    print('      multicast apps (JGroups, DDS, mDNS, market data) see on Calico, Flannel and cloud CNIs.');

    if (mode === 'node') {
      step(3, 'Starting one kmcast node agent per node (the kmcast-node DaemonSet): the pods stay untouched');
      print('      Each agent finds its local members (the Service\'s DNS answer, each pod\'s route to its host');
      print(`      veth), captures their multicast and broadcast at the host veth (nftables netdev ingress),`);
      print(`      copies it to the node's other members and sends one VXLAN copy (${DEMO_NODE_DEVICE}) per member node.`);
      agents.push(...(await startNodeAgents(lab, o.keep)));
      print('      In every pod, `kmcast wait` (the init container; uid 65532, no capability) asks its node agent');
      print('      at the node IP, port 9471, until the pod is programmed.');
      const ms = await waitEveryPod(lab, 30);
      print(`      ${lab.nodes.length} node agents running; every one of the ${lab.pods.length} pods' waits exited 0 after ${(ms / 1000).toFixed(1)} s.`);
    } else {
      step(3, `Starting the kmcast agent in every pod (what the sidecar does): vx0, a VXLAN device per pod`);
      print('      Peers come from the headless Service (the lab DNS); each agent announces the groups its');
      print('      apps joined, and programs flood entries (broadcast, 224.0.0.x) and per-group entries.');
      // With --keep the agents must outlive this process, like `kmcast lab up --agents`.
      for (const pod of lab.pods) agents.push(await startAgentProcess(lab, pod, [], { detached: o.keep }));
      const t3 = Date.now();
      await waitFor('every agent to report ready on /readyz', () => allReady(lab!.pods), 20_000, 200);
      await waitFor('every agent to reach every peer', () => converged(runner, lab!.pods), 15_000, 200);
      print(`      ${agents.length} agents ready and every vx0 flooding to its ${lab.pods.length - 1} peers after ${((Date.now() - t3) / 1000).toFixed(1)} s.`);
    }

    step(4, 'Same traffic again, with kmcast');
    const after = await trafficMatrix(lab, { apps, kinds, awaitJoinsMs: 10_000, ...(mode === 'node' ? { joined: (g: string) => nodesReplicate(runner, lab!, g) } : {}) });
    for (const kind of after.kinds) {
      print(`\n  ${KIND_TITLE[kind]}: ${crossNodeTotal(after, kind, nodeOf)} datagrams crossed nodes`);
      print(indent(formatMatrix(after, kind)));
    }
    const wrong = wrongCells(after);
    const ok = wrong.length === 0;
    print('');
    if (ok) {
      print(`  OK: every pod received every other pod's ${after.kinds.length * after.sent} datagrams exactly once (${after.pods.length * (after.pods.length - 1)} pairs x ${after.kinds.length} kinds),`);
      print('      with the sender\'s pod IP as source, no duplicates, no app changes.');
    } else {
      print(`  FAILED: ${wrong.length} cells are not exactly ${after.sent}:`);
      for (const w of wrong.slice(0, 12)) print(`      ${w.kind} ${w.from} -> ${w.to}: ${w.count}`);
      print(`      agent logs: ${lab.stateDir}/${mode === 'node' ? 'n<i>.node.log' : '<pod>.agent.log'}`);
    }

    step(5, o.keep ? 'Leaving the lab running' : 'Tearing the lab down');
    if (mode === 'node') {
      const st = await nodeStatus(lab);
      const d = st.domains[0];
      print(`      node 1's agent: ${d?.peers.filter((p) => p.state === 'alive').length ?? 0} peer nodes alive, ${d?.localMembers.length ?? 0} local members, ${st.ruleset.chains} nftables chains, ${d?.entries.mdb ?? 0} group entries`);
    } else {
      const sample = JSON.parse((await podFetch(lab.pods[0]!, '/status')).body) as { peers: { state: string }[]; entries: { fdb: number; mdb: number } };
      print(`      ${lab.pods[0]!.name}'s agent: ${sample.peers.filter((p) => p.state === 'alive').length} peers alive, ${sample.entries.fdb} flood entries, ${sample.entries.mdb} group entries`);
    }
    print('\nWhere to look next:');
    for (const line of nextSteps({ id: o.id, keep: o.keep, sudo: o.sudo ?? process.env.SUDO_USER !== undefined, mode })) print(line);
    return { ok, baselineCrossNode, wrongCells: wrong.length, seconds: (Date.now() - t0) / 1000 };
  } finally {
    if (!o.keep) {
      await Promise.all(agents.map((a) => a.stop().catch(() => null)));
      await labDown(runner, { id: o.id });
    }
  }
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

async function allReady(pods: readonly LabPod[]): Promise<boolean> {
  const codes = await Promise.all(pods.map((p) => podFetch(p, '/readyz').then((r) => r.status, () => 0)));
  return codes.every((c) => c === 200);
}

async function converged(runner: Runner, pods: readonly LabPod[]): Promise<boolean> {
  for (const p of pods) {
    const flood = (await new IpClient(runner, p.netns).bridge.fdb('vx0')).filter((e) => e.mac === '00:00:00:00:00:00').length;
    if (flood !== pods.length - 1) return false;
  }
  return true;
}
