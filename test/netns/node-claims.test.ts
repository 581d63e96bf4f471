/**
 * Membership is what DNS says: a pod two domains list is captured by neither, on a 1-node lab
 * (bridge style). Domain A (VNI 100): n1p1; domain B (VNI 200): n1p2, then n1p2 and n1p1.
 * Whoever can write B's endpoints must not pull A's pod into B (nor keep it in A unnoticed):
 * /v1/pods says multiple_domains, /status lists it as refused in both, the metric counts it, no
 * capture chain names its veth; listed by A alone again, it is programmed again.
 *
 * Then a pod with NET_ADMIN (n1p1, whose veth is older: the scan finds it first) adds B's member
 * n1p2's IP to its own eth0: the member stays bound to the veth it was first found on, and the
 * newcomer is refused and shown (ip_conflict).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp, setDnsRecord, setServiceMembers } from '../../src/lab/lab.js';
import { agentsEvidence, netnsFetch, runInNetns, startNodeAgent, waitFor } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT, podStatusPath } from '../../src/node/api.js';
import type { PodProgramStatus } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE_A = 'kmcast-peers.default.svc.cluster.local';
const SERVICE_B = 'app-b.default.svc.cluster.local';

describe('node mode: a pod two domains list is captured by neither', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let agent: NodeAgentHandle | undefined;
  const evidence = (): Promise<string> => agentsEvidence(agent ? [agent] : []);
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const netns = (): string => lab.nodes[0]!.netns;

  before(async () => {
    lab = await labUp({ id: testLabId('nc'), nodes: ['bridge'], podsPerNode: 2, mtu: 1500, service: SERVICE_A }, { runner });
    await setServiceMembers(lab, [pod('n1p1').ip]);
    await setDnsRecord(lab, SERVICE_B, [pod('n1p2').ip]);
  });

  after(async () => {
    await agent?.stop('SIGKILL').catch(() => undefined);
    if (lab && !keepLab()) await labDown(runner, { id: lab.spec.id });
  });

  async function podStatus(p: LabPod): Promise<PodProgramStatus | undefined> {
    const r = await netnsFetch(netns(), podStatusPath(p.ip), NODE_HTTP_PORT);
    return r.status === 200 ? (JSON.parse(r.body) as PodProgramStatus) : undefined;
  }

  test('baseline: each pod programmed in its own domain', async (t) => {
    if (!needRoot(t)) return;
    agent = await startNodeAgent(lab, lab.nodes[0]!, ['--service', `${SERVICE_A}=100`, '--service', `${SERVICE_B}=200`, '--resolve-interval', '300', '--resync-interval', '500']);
    for (const [p, domain] of [
      [pod('n1p1'), SERVICE_A],
      [pod('n1p2'), SERVICE_B],
    ] as const) {
      const s = await waitFor(
        `${p.name} programmed`,
        async () => {
          const s = await podStatus(p);
          return s?.programmed ? s : undefined;
        },
        30_000,
        { intervalMs: 200, explain: evidence },
      );
      assert.equal(s.domain, domain);
    }
  });

  test("B lists A's pod too: refused by both, shown, counted, not captured; A alone again: programmed again", async (t) => {
    if (!needRoot(t)) return;
    const victim = pod('n1p1');
    const veth = (await podStatus(victim))!.hostVeth!;
    await setDnsRecord(lab, SERVICE_B, [pod('n1p2').ip, victim.ip]);
    const s = await waitFor(
      `${victim.name} refused as multiple_domains`,
      async () => {
        const s = await podStatus(victim);
        return s?.reason === 'multiple_domains' ? s : undefined;
      },
      15_000,
      { intervalMs: 200, explain: evidence },
    );
    assert.equal(s.programmed, false);
    assert.match(s.domain ?? '', new RegExp(`${SERVICE_A}.*${SERVICE_B}`));
    const st = JSON.parse((await netnsFetch(netns(), '/status', NODE_HTTP_PORT)).body) as NodeStatus;
    for (const d of st.domains) {
      assert.ok(!d.localMembers.some((m) => m.podIp === victim.ip), `${d.service} must not capture ${victim.ip}`);
      assert.deepEqual(
        d.refused?.map((r) => [r.podIp, r.reason]),
        [[victim.ip, 'multiple_domains']],
        `${d.service} shows it refused`,
      );
    }
    assert.ok(
      st.domains.find((d) => d.vni === 200)!.localMembers.some((m) => m.podIp === pod('n1p2').ip),
      'B keeps its own member',
    );
    await waitFor(
      `no capture chain for ${veth}`,
      async () => {
        const r = await runInNetns(netns(), ['nft', 'list', 'table', 'netdev', 'kmcast-node']);
        return !r.stdout.includes(`"${veth}"`);
      },
      10_000,
      { intervalMs: 200, explain: evidence },
    );
    const metrics = (await netnsFetch(netns(), '/metrics', NODE_HTTP_PORT)).body;
    assert.match(metrics, new RegExp(`kmcast_node_refused_pods\\{domain="${SERVICE_A.replace(/\./g, '\\.')}",reason="multiple_domains"\\} 1`));
    await setDnsRecord(lab, SERVICE_B, [pod('n1p2').ip]);
    const back = await waitFor(
      `${victim.name} programmed in A again`,
      async () => {
        const s = await podStatus(victim);
        return s?.programmed ? s : undefined;
      },
      15_000,
      { intervalMs: 200, explain: evidence },
    );
    assert.equal(back.domain, SERVICE_A);
  });

  test("a pod adding a member's IP to its eth0 does not take over the member: refused, shown, counted", async (t) => {
    if (!needRoot(t)) return;
    const victim = pod('n1p2');
    const attacker = pod('n1p1');
    const victimVeth = (await podStatus(victim))!.hostVeth!;
    const attackerVeth = (await podStatus(attacker))!.hostVeth!;
    assert.notEqual(victimVeth, attackerVeth);
    await runner.run(['ip', 'addr', 'add', `${victim.ip}/32`, 'dev', 'eth0'], { netns: attacker.netns });
    try {
      const refused = await waitFor(
        `${attacker.name}'s veth ${attackerVeth} refused as a second claimant of ${victim.ip}`,
        async () => {
          const st = JSON.parse((await netnsFetch(netns(), '/status', NODE_HTTP_PORT)).body) as NodeStatus;
          return st.domains.find((d) => d.vni === 200)?.refused?.find((r) => r.podIp === victim.ip && r.reason === 'ip_conflict');
        },
        15_000,
        { intervalMs: 200, explain: evidence },
      );
      assert.equal(refused.hostVeth, attackerVeth);
      const s = await podStatus(victim);
      assert.equal(s?.hostVeth, victimVeth, `${victim.ip} must stay on its own veth: ${JSON.stringify(s)}`);
      assert.equal(s?.programmed, true);
      const metrics = (await netnsFetch(netns(), '/metrics', NODE_HTTP_PORT)).body;
      assert.match(metrics, new RegExp(`kmcast_node_refused_pods\\{domain="${SERVICE_B.replace(/\./g, '\\.')}",reason="ip_conflict"\\} 1`));
      assert.match(await readFile(agent!.logFile, 'utf8'), /member pods refused/);
    } finally {
      await runner.run(['ip', 'addr', 'del', `${victim.ip}/32`, 'dev', 'eth0'], { netns: attacker.netns, allowFail: true });
    }
    await waitFor(
      'the conflict clears once the address is gone',
      async () => {
        const st = JSON.parse((await netnsFetch(netns(), '/status', NODE_HTTP_PORT)).body) as NodeStatus;
        return !st.domains.some((d) => d.refused?.length);
      },
      15_000,
      { intervalMs: 200, explain: evidence },
    );
  });
});
