/**
 * `kmcast demo --mode gateway`: the node-mode lab plus an outside LAN (a switch with IGMP snooping
 * and two hosts that are not pods) on node 1, whose node agent is the domain's gateway. Shows
 * that a LAN feed and the pods' traffic do not cross, then, with the gateway, that the feed reaches
 * every pod on every node exactly once and a pod's stream reaches the LAN hosts exactly once.
 * With `ipv6` the lab and the LAN are dual-stack and the same is shown for IPv6 groups beside.
 */
import { labDown, labUp, setServiceMembers } from './lab.js';
import { DEFAULT_SERVICE, podAddresses } from './plan.js';
import type { DemoOptions, DemoResult } from './demo.js';
import { startNodeAgents, waitEveryPod } from './demo-node.js';
import { received, sendFromPod, startNodeReceiver, UNPRIVILEGED } from './node-apps.js';
import { sendMcast6, startMcast6Receiver } from './traffic6.js';
import type { Mcast6Receiver } from './traffic6.js';
import type { NodeReceiver, NodeReceiverReport } from './node-apps.js';
import { netnsFetch, waitFor } from './process.js';
import type { NodeAgentHandle } from './process.js';
import type { Lab } from './types.js';
import { NODE_HTTP_PORT } from '../node/api.js';
import type { NodeStatus } from '../node/status-types.js';
import { formatNodeStatus } from '../node/status-format.js';

export const DEMO_FEED = '239.1.1.1';
export const DEMO_OUT = '239.2.2.2';
const PORT = 7800;
const N = 20;
/** The gateway's flags in the demo: the feed's range inbound, one group out, mDNS both ways. Pure. */
export const DEMO_GATEWAY_ARGS: readonly string[] = ['--gateway-interface', 'kmclan', '--gateway-group', `239.1.1.0/24=in,${DEMO_OUT}=out,224.0.0.251=both`];
export const DEMO_FEED6 = 'ff05::1:3';
export const DEMO_OUT6 = 'ff05::2:2';
/** With --ipv6: the IPv6 feed's range inbound and one IPv6 group out, beside the IPv4 ones. Pure. */
export function demoGatewayArgs(ipv6: boolean): readonly string[] {
  return ipv6 ? [...DEMO_GATEWAY_ARGS.slice(0, 3), `${DEMO_GATEWAY_ARGS[3]},ff05::1:0/112=in,${DEMO_OUT6}=out`] : DEMO_GATEWAY_ARGS;
}

interface Where {
  readonly name: string;
  readonly netns: string;
}

/** Receivers in `where` joined to `group`, then `send`, then each one's count from `source`. */
async function countFrom(where: readonly Where[], group: string, source: string, send: () => Promise<void>): Promise<Map<string, number>> {
  const rx = new Map<string, NodeReceiver>();
  await Promise.all(where.map(async (w) => rx.set(w.name, await startNodeReceiver(w.netns, { port: PORT, groups: [group], maxSeconds: 60 }))));
  await send();
  await new Promise((r) => setTimeout(r, 500));
  const out = new Map<string, number>();
  for (const w of where) {
    const report: NodeReceiverReport = await rx.get(w.name)!.stop();
    out.set(w.name, received(report, group, source));
  }
  return out;
}

/** The IPv6 twin of countFrom: python3 sockets joined on eth0 by index (unprivileged in pods). */
async function countFrom6(where: readonly (Where & { pod: boolean })[], group: string, source: string, send: () => Promise<void>): Promise<Map<string, number>> {
  const rx = new Map<string, Mcast6Receiver>();
  for (const w of where) rx.set(w.name, await startMcast6Receiver(w, { groups: [group], port: PORT, ...(w.pod ? { as: UNPRIVILEGED } : {}) }));
  await send();
  await new Promise((r) => setTimeout(r, 500));
  const out = new Map<string, number>();
  for (const w of where) out.set(w.name, (await rx.get(w.name)!.stop()).filter((d) => d.dst === group && d.src === source).length);
  return out;
}

const row = (counts: ReadonlyMap<string, number>): string => [...counts].map(([k, v]) => `${k} ${v}`).join('  ');

export async function runGatewayDemo(o: DemoOptions): Promise<DemoResult> {
  const { runner, print } = o;
  const t0 = Date.now();
  const v6 = o.ipv6 === true;
  const args = demoGatewayArgs(v6);
  const step = (n: number, text: string): void => print(`\n[${n}/4] ${text}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const agents: NodeAgentHandle[] = [];
  let lab: Lab | undefined;
  try {
    step(1, 'Building the lab: nodes, pods, and an outside LAN on node 1');
    lab = await labUp(
      { id: o.id, nodes: o.nodes, podsPerNode: o.podsPerNode, mtu: o.mtu, service: DEFAULT_SERVICE, ...(v6 ? { ipv6: true } : {}) },
      { runner, lan: { nodes: [1], hosts: 2 }, onProgress: (msg) => print(`      … ${msg}`) },
    );
    await setServiceMembers(lab, lab.pods.flatMap(podAddresses));
    const lan = lab.lan!;
    const [h1] = lan.hosts;
    const node1Lan = lan.nodes.find((n) => n.node === 1)!.ip;
    const node1Lan6 = lan.nodes.find((n) => n.node === 1)!.ip6 ?? '';
    print(`      LAN ${lan.cidr}${v6 ? ` ${lan.cidr6}` : ''}: a switch with ${v6 ? 'IGMP and MLD' : 'IGMP'} snooping and a querier; hosts ${lan.hosts.map((h) => `${h.name} ${h.ip}${h.ip6 ? ` ${h.ip6}` : ''}`).join(', ')}; node 1 on it as ${node1Lan}${v6 ? ` ${node1Lan6}` : ''} (kmclan)`);
    print(`      pods: ${lab.pods.map((p) => `${p.name} ${p.ip}`).join(', ')}`);
    const pods: Where[] = lab.pods.map((p) => ({ name: p.name, netns: p.netns }));
    const hosts: Where[] = lan.hosts.map((h) => ({ name: h.name, netns: h.netns }));
    const sender = lab.pods[lab.pods.length - 1]!;

    step(2, `Before kmcast: ${h1!.name} sends ${N} datagrams to ${DEMO_FEED}, pod ${sender.name} sends ${N} to ${DEMO_OUT}`);
    const before = await countFrom(pods, DEMO_FEED, h1!.ip, () => sendFromPod(h1!.netns, DEMO_FEED, { port: PORT, count: N, intervalMs: 5 }));
    const beforeOut = await countFrom(hosts, DEMO_OUT, sender.ip, () => sendFromPod(sender.netns, DEMO_OUT, { port: PORT, count: N, intervalMs: 5 }));
    print(`      pods hearing the LAN feed:  ${row(before)}`);
    print(`      LAN hosts hearing the pod:  ${row(beforeOut)}`);
    print('      Nothing crosses: the LAN is not the cluster network, and the pods\' CNI carries no multicast.');
    const pods6 = pods.map((p) => ({ ...p, pod: true }));
    const hosts6 = hosts.map((h) => ({ ...h, pod: false }));
    const before6 = v6 ? await countFrom6(pods6, DEMO_FEED6, h1!.ip6 ?? '', () => sendMcast6(h1!, DEMO_FEED6, 'demo feed', { port: PORT, count: N })) : new Map<string, number>();
    const beforeOut6 = v6
      ? await countFrom6(hosts6, DEMO_OUT6, sender.ip6 ?? '', () => sendMcast6(sender, DEMO_OUT6, 'demo stream', { port: PORT, count: N, as: UNPRIVILEGED }))
      : new Map<string, number>();
    if (v6) {
      print(`      pods hearing the LAN IPv6 feed ${DEMO_FEED6}:  ${row(before6)}`);
      print(`      LAN hosts hearing the pod on ${DEMO_OUT6}:   ${row(beforeOut6)}`);
    }
    const baseline = [...before.values(), ...beforeOut.values(), ...before6.values(), ...beforeOut6.values()].reduce((a, b) => a + b, 0);

    step(3, 'Starting kmcast node on every node; node 1 is also the gateway to the LAN');
    agents.push(...(await startNodeAgents(lab, o.keep, (n) => (n === 1 ? args : []))));
    print(`      node 1: kmcast node ${args.join(' ')}`);
    const ms = await waitEveryPod(lab, 60);
    const status = async (): Promise<NodeStatus> => JSON.parse((await netnsFetch(lab!.nodes[0]!.netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
    await waitFor('the gateway is active', async () => (await status()).gateway?.active === true, 15_000, 100);
    print(`      every pod programmed after ${(ms / 1000).toFixed(1)} s; the gateway on node 1 is active.`);

    step(4, `With the gateway: the same ${N} datagrams each way`);
    const lab_ = lab;
    const after = await countFrom(pods, DEMO_FEED, h1!.ip, async () => {
      // The gateway joins the feed on the LAN once a member pod joined it (IGMP, like a router).
      await waitFor(`the gateway joined ${DEMO_FEED}`, async () => (await status()).gateway?.joined.includes(DEMO_FEED) === true, 10_000, 100);
      await waitFor('every node replicates the feed', async () => ((await status()).domains[0]?.peers.filter((p) => p.groups.includes(DEMO_FEED)).length ?? 0) === lab_.nodes.length - 1, 10_000, 100);
      await sendFromPod(h1!.netns, DEMO_FEED, { port: PORT, count: N, intervalMs: 5 });
    });
    const afterOut = await countFrom(hosts, DEMO_OUT, node1Lan, async () => {
      await new Promise((r) => setTimeout(r, 300));
      await sendFromPod(sender.netns, DEMO_OUT, { port: PORT, count: N, intervalMs: 5 });
    });
    print(`      pods hearing the LAN feed:  ${row(after)}   (source ${h1!.ip}, kept)`);
    print(`      LAN hosts hearing the pod:  ${row(afterOut)}   (source ${node1Lan}: the gateway's address, SNAT)`);
    let after6 = new Map<string, number>();
    let afterOut6 = new Map<string, number>();
    if (v6) {
      after6 = await countFrom6(pods6, DEMO_FEED6, h1!.ip6 ?? '', async () => {
        // Joined by MLD this time, once a member joined.
        await waitFor(`the gateway joined ${DEMO_FEED6}`, async () => (await status()).gateway?.joined.includes(DEMO_FEED6) === true, 10_000, 100);
        await waitFor('every node replicates the IPv6 feed', async () => ((await status()).domains[0]?.peers.filter((p) => p.groups.includes(DEMO_FEED6)).length ?? 0) === lab_.nodes.length - 1, 10_000, 100);
        await sendMcast6(h1!, DEMO_FEED6, 'demo feed', { port: PORT, count: N });
      });
      afterOut6 = await countFrom6(hosts6, DEMO_OUT6, node1Lan6, () => sendMcast6(sender, DEMO_OUT6, 'demo stream', { port: PORT, count: N, as: UNPRIVILEGED }));
      print(`      pods hearing the LAN IPv6 feed ${DEMO_FEED6}:  ${row(after6)}   (source ${h1!.ip6}, kept)`);
      print(`      LAN hosts hearing the pod on ${DEMO_OUT6}:   ${row(afterOut6)}   (source ${node1Lan6}: the gateway's IPv6 address, SNAT)`);
    }
    const all = [...after, ...afterOut, ...after6, ...afterOut6];
    const ok = all.every(([, v]) => v === N);
    const wrong = all.filter(([, v]) => v !== N).length;
    print('');
    print(ok ? `  OK: the LAN feed reached all ${after.size} pods on ${lab.nodes.length} nodes exactly once; the pod's stream reached both LAN hosts exactly once${v6 ? '; over IPv4 and IPv6' : ''}.` : `  FAILED: ${wrong} receivers did not get exactly ${N} (agent logs: ${lab.stateDir}/n<i>.node.log)`);
    const st = await status();
    print('\n  kmcast status --node on node 1 (the gateway part):');
    const text = formatNodeStatus(st, new Date());
    const part = text.slice(text.indexOf('gateway '));
    print(part.slice(0, part.indexOf('\ncontrol drops')).trimEnd().replace(/^/gm, '    '));
    print('\nWhere to look next:');
    const k = (o.sudo ?? process.env.SUDO_USER !== undefined) ? 'sudo npx kmcast' : 'npx kmcast';
    print(o.keep ? `  ${k} lab exec --id ${o.id} h1 -- ip maddr     the LAN side; ${k} lab down --id ${o.id} removes it` : `  ${k} demo --mode gateway --keep      the same, left running to explore`);
    print(`  ${k} generate --mode gateway --help   the DaemonSet for your gateway nodes; docs/gateway.md`);
    return { ok, baselineCrossNode: baseline, wrongCells: wrong, seconds: (Date.now() - t0) / 1000 };
  } finally {
    if (!o.keep) {
      await Promise.all(agents.map((a) => a.stop().catch(() => null)));
      if (lab) await labDown(runner, { id: o.id });
    }
  }
}
