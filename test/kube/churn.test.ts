/**
 * Churn under a flowing stream, kmcast node mode on the lab's real Kubernetes cluster, as root
 * (`npm run test:kube`). One 2-node cluster (a calico-style node with CNI ptp, a bridge-style node
 * with CNI bridge), node mode installed as docs/kubernetes.md says (deploy/node, the key Secret,
 * the domain in the ConfigMap), one domain `st`: a sender and a receiver on node 1, two receivers
 * on node 2, each its own Deployment pinned to its node, run through `kmcast inject --mode node`.
 *
 * While the sender streams numbered datagrams to the group at a fixed rate:
 * 1. one receiver pod on node 2 is deleted; its Deployment replaces it, the replacement waits in
 *    kmcast-wait until programmed and then receives;
 * 2. the kmcast-node DaemonSet is rolled to a new image tag (the same image, tagged again in every
 *    node's containerd, as a push of a new tag would be), one node at a time;
 * 3. node 2's agent pod is deleted, and the DaemonSet re-creates it.
 * Then, by sequence number: no receiver got any datagram twice; the loss of each receiver is
 * reported, per phase, and bounded (see LOSS_*).
 */
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_AGENT_HTTP_PORT, netnsFetch, waitFor } from '../../src/lab/process.js';
import { tagImageOnNodes } from '../../src/lab/kube/cluster.js';
import { APPS_IMAGE } from '../../src/lab/kube/plan.js';
import { KMCAST_IMAGE } from '../../src/lab/kube/kmcast-image.js';
import { needRoot, testLabId } from '../netns/harness.js';
import { kubeLabDown, kubeLabUp, nodeName, runner } from './harness.js';
import type { KubeLab } from './harness.js';
import { DEPLOY, Kube, kmcast, list, recvPy } from './kube.js';
import type { Pod } from './kube.js';

const id = testLabId('kc');
let cluster: KubeLab | undefined;
const k = new Kube(() => cluster);
const work = mkdtempSync(join(tmpdir(), 'kmc-kube-churn-'));

const NS = 'kmc-churn';
const GROUP = '239.10.4.1';
const PORT = 7401;
const UPORT = 7402;
/** Datagrams per second: one every 10 ms, so a gap of N datagrams is N x 10 ms without delivery. */
const RATE = 100;
const ROLL_IMAGE = `${KMCAST_IMAGE}-roll`;
const timings: string[] = [];
const state: { domain?: string } = {};

// The stream: "st-<seq>-<wall ms>" to the group out of eth0 at RATE per second, paced by the
// clock, until /tmp/stop exists (or 600 s); then "sent <n>".
const STREAM_PY = `
import os, socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack('4s4si', socket.inet_aton('0.0.0.0'), socket.inet_aton('0.0.0.0'), socket.if_nametoindex('eth0')))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
start = time.time(); i = 0
while time.time() - start < 600:
    if i % ${RATE} == 0 and os.path.exists('/tmp/stop'): break
    s.sendto(('st-%d-%d' % (i, int(time.time() * 1000))).encode(), ('${GROUP}', ${PORT}))
    i += 1
    d = start + i / ${RATE} - time.time()
    if d > 0: time.sleep(d)
print('sent', i, flush=True)
`;

/** One Deployment of the domain `st` (kmcast.io/name), one replica pinned to lab node `node`. */
function member(name: string, node: number): Record<string, unknown> {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS, annotations: { 'kmcast.io/name': 'st' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: 1,
          nodeSelector: { 'kubernetes.io/hostname': nodeName(id, node) },
          securityContext: { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'app',
              image: APPS_IMAGE,
              imagePullPolicy: 'Never',
              command: ['python3', '-u', '-c', recvPy(GROUP, PORT, UPORT)],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            },
          ],
        },
      },
    },
  };
}

const objects = (): Array<Record<string, unknown>> => [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
  member('tx', 1),
  member('rxa', 1),
  member('rxb', 2),
  member('rxc', 2),
];

interface NodeStatus {
  ready: boolean;
  domains: Array<{ service: string; localMembers: Array<{ podIp: string; programmed: boolean; groups: string[] }>; peers: Array<{ ip: string; state: string; groups: string[] }> }>;
}

async function agentStatus(node: number): Promise<NodeStatus> {
  const r = await netnsFetch(nodeName(id, node), '/status', NODE_AGENT_HTTP_PORT);
  if (r.status !== 200) throw new Error(`node ${node} /status: HTTP ${r.status}: ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as NodeStatus;
}

async function evidence(): Promise<string> {
  const out = [await k.show(['-n', 'kmcast-node', 'get', 'pods', '-o', 'wide']), await k.show(['-n', NS, 'get', 'pods', '-o', 'wide'])];
  for (const i of [1, 2])
    out.push(
      `node ${i} /status: ${await agentStatus(i).then(
        (s) => JSON.stringify(s.domains).slice(0, 1200),
        (e: unknown) => String(e),
      )}`,
    );
  out.push(await k.events(NS));
  return out.join('\n');
}

/** Both agents ready, their local members programmed and joined, each node's join heard by the other. */
async function domainSettled(localMembers: readonly [number, number]): Promise<boolean> {
  for (const i of [1, 2] as const) {
    const s = await agentStatus(i).catch(() => undefined);
    const d = s?.domains.find((x) => x.service === state.domain);
    if (!s?.ready || !d) return false;
    if (d.localMembers.length !== localMembers[i - 1] || d.localMembers.some((m) => !m.programmed || !m.groups.includes(GROUP))) return false;
    if (!d.peers.some((p) => p.state === 'alive' && p.groups.includes(GROUP))) return false;
  }
  return true;
}

/** A receiver's stream datagrams: sequence number and send time, in arrival order. */
async function received(pod: string): Promise<Array<{ seq: number; ms: number }>> {
  const out: Array<{ seq: number; ms: number }> = [];
  for (const l of await k.logs(NS, pod, 'app')) {
    const m = /^mcast \S+ st-(\d+)-(\d+)$/.exec(l);
    if (m) out.push({ seq: Number(m[1]), ms: Number(m[2]) });
  }
  return out;
}

interface Loss {
  readonly lost: number;
  readonly duplicates: number;
  /** Runs of missing sequence numbers, as "first..last (n)". */
  readonly gaps: string[];
}

/** Loss and duplicates of `got` over the sequence numbers [from, to). */
function loss(got: ReadonlyArray<{ seq: number }>, from: number, to: number): Loss {
  const counts = new Map<number, number>();
  for (const g of got) counts.set(g.seq, (counts.get(g.seq) ?? 0) + 1);
  let duplicates = 0;
  for (const c of counts.values()) duplicates += c - 1;
  const gaps: string[] = [];
  let lost = 0;
  let run: number | undefined;
  for (let s = from; s <= to; s++) {
    const missing = s < to && !counts.has(s);
    if (missing) {
      lost++;
      run ??= s;
    } else if (run !== undefined) {
      gaps.push(`${run}..${s - 1} (${s - run})`);
      run = undefined;
    }
  }
  return { lost, duplicates, gaps };
}

before(async () => {
  cluster = await kubeLabUp(id, ['calico', 'bridge']);
});

after(async () => {
  rmSync(work, { recursive: true, force: true });
  await kubeLabDown(cluster);
  if (timings.length) process.stderr.write(`# churn on the cluster: ${timings.join('; ')}\n`);
});

test('node mode installed, the domain st of four pods on two nodes running and programmed', async (t: TestContext) => {
  if (!needRoot(t)) return;
  t.diagnostic(`cluster up in ${cluster!.upSeconds.toFixed(1)} s`);
  await k.kubectl(['apply', '-f', join(DEPLOY, 'node', 'namespace.yaml')]);
  const key = (await runner.run(['openssl', 'rand', '-hex', '32'])).stdout.trim();
  await k.kubectl(['-n', 'kmcast-node', 'create', 'secret', 'generic', 'kmcast-node-key', `--from-literal=key=${key}`]);
  await k.kubectl(['apply', '-k', join(DEPLOY, 'node')]);
  const file = join(work, 'st.json');
  writeFileSync(file, list(objects()));
  const injected = await kmcast(['inject', '--mode', 'node', '-f', file]);
  const domain = /add the domain (\S+) to the kmcast-node DaemonSet/.exec(injected.stderr)?.[1];
  assert.equal(domain, `st-kmcast.${NS}.svc.cluster.local`, injected.stderr);
  state.domain = domain;
  await k.kubectl(['-n', 'kmcast-node', 'patch', 'configmap', 'kmcast-node', '--type=merge', '-p', JSON.stringify({ data: { services: domain } })]);
  await k.kubectl(['-n', 'kmcast-node', 'rollout', 'restart', 'daemonset/kmcast-node']);
  await k.daemonSetRolledOut('kmcast-node', 'kmcast-node', 2, 180_000, evidence);
  const appFile = join(work, 'st.kmcast.yaml');
  writeFileSync(appFile, injected.stdout);
  await k.kubectl(['apply', '-f', appFile]);
  const isMember = (p: Pod): boolean => p.raw.metadata.labels?.['kmcast.io/member'] === 'st';
  for (const name of ['tx', 'rxa', 'rxb', 'rxc']) await k.readyApps(NS, `app=${name}`, 1, 240_000, isMember);
  await waitFor('both agents with their two members programmed and joined, each node joined at the other', async () => await domainSettled([2, 2]), 60_000, {
    intervalMs: 1000,
    explain: evidence,
  });
});

test('a receiver deleted and replaced, then the kmcast-node DaemonSet rolled to a new image tag, while a stream flows: no duplicates, loss bounded', async (t: TestContext) => {
  if (!needRoot(t)) return;
  assert.ok(state.domain, 'the domain is running');
  const [tx] = await k.pods(NS, 'app=tx');
  const [rxa] = await k.pods(NS, 'app=rxa');
  const [rxb] = await k.pods(NS, 'app=rxb');
  const [rxc] = await k.pods(NS, 'app=rxc');
  assert.ok(tx && rxa && rxb && rxc);
  assert.deepEqual([tx.node, rxa.node, rxb.node, rxc.node], [nodeName(id, 1), nodeName(id, 1), nodeName(id, 2), nodeName(id, 2)]);

  // The stream runs as a kubectl exec for the whole test; it ends when /tmp/stop appears.
  const streaming = runner.run(['kubectl', `--kubeconfig=${k.config}`, '-n', NS, 'exec', tx.name, '-c', 'app', '--', 'python3', '-u', '-c', STREAM_PY], {
    allowFail: true,
    timeoutMs: 660_000,
  });
  const marks = { deleted: 0, replacementReady: 0, rollStart: 0, rollEnd: 0, restartStart: 0, restartEnd: 0 };
  const stop = async (): Promise<void> => {
    await k.exec(NS, tx.name, 'app', ['touch', '/tmp/stop']).catch(() => undefined);
  };
  try {
    await waitFor('the stream at every receiver', async () => (await Promise.all([rxa, rxb, rxc].map(async (p) => (await received(p.name)).length >= RATE))).every(Boolean), 30_000, {
      intervalMs: 500,
      explain: async () =>
        `${
          (await streaming.then(
            (r) => r.stderr,
            () => '',
          )) || 'streaming'
        }\n${await evidence()}`,
    });

    // 1. A receiver pod deleted: its Deployment replaces it.
    marks.deleted = Date.now();
    await k.kubectl(['-n', NS, 'delete', 'pod', rxc.name, '--wait=false']);
    const [replacement] = await k.readyApps(NS, 'app=rxc', 1, 240_000, (p) => p.name !== rxc.name);
    assert.ok(replacement);
    marks.replacementReady = Date.now();
    assert.equal(replacement.node, nodeName(id, 2));
    const wait = (await k.logs(NS, replacement.name, 'kmcast-wait')).find((l) => l.includes('is programmed'));
    assert.ok(wait, `the replacement ${replacement.name} ran kmcast-wait`);
    timings.push(`replacement running ${((marks.replacementReady - marks.deleted) / 1000).toFixed(1)} s after the delete (${/after ([\d.]+ s)/.exec(wait)?.[1] ?? '?'} in kmcast-wait)`);
    await waitFor('the replacement to receive the stream', async () => (await received(replacement.name)).length >= RATE, 30_000, { intervalMs: 500, explain: evidence });
    await waitFor('the domain settled again', async () => await domainSettled([2, 2]), 60_000, { intervalMs: 1000, explain: evidence });

    // 2. The node agents rolled to a new image tag, one node at a time (maxUnavailable 1).
    await tagImageOnNodes(runner, cluster!.lab!, KMCAST_IMAGE, ROLL_IMAGE);
    marks.rollStart = Date.now();
    await k.kubectl(['-n', 'kmcast-node', 'set', 'image', 'daemonset/kmcast-node', `node=${ROLL_IMAGE}`]);
    await k.daemonSetRolledOut('kmcast-node', 'kmcast-node', 2, 240_000, evidence);
    const rolled = (await k.pods('kmcast-node', 'app.kubernetes.io/component=node')).filter((p) => !p.deleting);
    for (const a of rolled) assert.equal(a.raw.spec.containers[0]?.image, ROLL_IMAGE, `${a.name} runs the new tag`);
    await waitFor('the domain settled after the rollout', async () => await domainSettled([2, 2]), 60_000, { intervalMs: 1000, explain: evidence });
    marks.rollEnd = Date.now();
    const order = [...rolled].sort((x, y) => Date.parse(x.raw.metadata.creationTimestamp) - Date.parse(y.raw.metadata.creationTimestamp)).map((p) => p.node.slice(-2));
    timings.push(`rollout of 2 agents (${order.join(' then ')}) to settled ${((marks.rollEnd - marks.rollStart) / 1000).toFixed(1)} s`);

    // 3. Node 2's agent pod deleted on its own (the DaemonSet re-creates it): node 2's LEAVE and
    // its successor's first STATE, whatever the rollout's order and timing were.
    const n2agent = rolled.find((p) => p.node === nodeName(id, 2));
    assert.ok(n2agent);
    marks.restartStart = Date.now();
    await k.kubectl(['-n', 'kmcast-node', 'delete', 'pod', n2agent.name, '--wait=false']);
    await waitFor(
      "node 2's agent re-created and ready",
      async () => (await k.pods('kmcast-node', 'app.kubernetes.io/component=node')).some((p) => p.node === nodeName(id, 2) && p.name !== n2agent.name && p.ready),
      120_000,
      { intervalMs: 500, explain: evidence },
    );
    await waitFor("the domain settled after node 2's agent restarted", async () => await domainSettled([2, 2]), 60_000, { intervalMs: 1000, explain: evidence });
    marks.restartEnd = Date.now();
    timings.push(`node 2's agent deleted to settled ${((marks.restartEnd - marks.restartStart) / 1000).toFixed(1)} s`);
    // Two more seconds of stream after everything settled: the tail every receiver must have.
    await waitFor(
      'two seconds of stream past the settled restart at every receiver',
      async () => (await Promise.all([rxa.name, rxb.name, replacement.name].map(async (p) => (await received(p)).some((g) => g.ms > marks.restartEnd + 2000)))).every(Boolean),
      30_000,
      { intervalMs: 500, explain: evidence },
    );
    await stop();
    const done = await streaming;
    const sent = Number(/sent (\d+)/.exec(done.stdout)?.[1] ?? NaN);
    assert.ok(sent > 0, `the stream: ${done.stdout}${done.stderr}`);
    // The last datagrams are in flight for milliseconds; the fence is every receiver's last one.
    await waitFor(
      'the last datagram of the stream at every receiver',
      async () => (await Promise.all([rxa.name, rxb.name, replacement.name].map(async (p) => (await received(p)).some((g) => g.seq === sent - 1)))).every(Boolean),
      15_000,
      { intervalMs: 500, explain: evidence },
    );

    // By sequence number, per receiver and phase. The first sequence number sent at or after a
    // wall-clock mark is found from the send times the datagrams carry.
    const got = {
      rxa: await received(rxa.name),
      rxb: await received(rxb.name),
      old: await received(rxc.name).catch(() => []),
      replacement: await received(replacement.name),
    };
    const all = [...got.rxa, ...got.rxb, ...got.replacement];
    const seqAt = (ms: number): number => {
      const after = all.filter((g) => g.ms >= ms).map((g) => g.seq);
      return after.length ? Math.min(...after) : sent;
    };
    const rollFrom = seqAt(marks.rollStart);
    const restartFrom = seqAt(marks.restartStart);
    const readyFrom = seqAt(marks.replacementReady);
    const report: string[] = [
      `sent ${sent} at ${RATE}/s; the replacement ready at #${readyFrom}; the rollout from #${rollFrom} to #${seqAt(marks.rollEnd)}; node 2's agent deleted at #${restartFrom}`,
    ];
    const phases = (name: string, g: ReadonlyArray<{ seq: number }>, from: number): { total: Loss; roll: Loss; restart: Loss; before: Loss } => {
      const r = { total: loss(g, from, sent), before: loss(g, from, rollFrom), roll: loss(g, rollFrom, restartFrom), restart: loss(g, restartFrom, sent) };
      report.push(
        `${name}: lost ${r.total.lost} of ${sent - from} (before the rollout ${r.before.lost}, in the rollout ${r.roll.lost}, node 2's agent deleted ${r.restart.lost}), duplicates ${r.total.duplicates}, gaps ${r.total.gaps.join(' ') || 'none'}`,
      );
      return r;
    };
    const a = phases('rxa (node 1, with the sender)', got.rxa, 0);
    const b = phases('rxb (node 2)', got.rxb, 0);
    const firstOfReplacement = Math.min(...got.replacement.map((g) => g.seq));
    const rep = phases(`replacement (node 2, first #${firstOfReplacement})`, got.replacement, readyFrom);
    const old = loss(got.old, 0, 0);
    timings.push(...report);
    for (const l of report) t.diagnostic(l);

    // Exactly once: no receiver ever got a datagram twice, through the delete and the rollout.
    for (const [name, l] of [
      ['rxa', a.total],
      ['rxb', b.total],
      ['replacement', rep.total],
    ] as const) {
      assert.equal(l.duplicates, 0, `${name} got duplicates: ${report.join('\n')}`);
    }
    assert.equal(old.duplicates, 0, 'the deleted receiver got duplicates');
    // The delete and the replacement cost the other receivers nothing: their node keeps members
    // throughout, and nothing about them changed.
    assert.equal(a.before.lost + b.before.lost, 0, `loss before the rollout:\n${report.join('\n')}`);
    // The replacement hears the stream from when it is Ready: its app joined the group before
    // printing "ready" (what readyApps waited for), and its node was programmed before the app
    // started (kmcast-wait). Anything before its first datagram after Ready is loss.
    assert.ok(firstOfReplacement <= readyFrom, `the replacement's first datagram #${firstOfReplacement} is after it was Ready (#${readyFrom}):\n${report.join('\n')}`);
    assert.equal(rep.before.lost, 0, `the replacement lost datagrams after it was Ready:\n${report.join('\n')}`);
    // The rollout and the restart: node 1's agent restarts without loss (the data plane stays, and
    // the local receiver is served by the same node's nftables), so rxa loses nothing. Node 2's
    // agent sends LEAVE on SIGTERM, so node 1 stops sending to node 2 until the new agent's
    // first STATE (docs/node-mode.md, "Restarts"): node 2's receivers lose what is sent in that
    // window, the time the kubelet takes to start the new agent and the agent to announce.
    // Measured on 2 loaded cores: 0 to 1.7 s of stream at node 2's receivers, in the rollout or
    // in the lone restart (node 1's MDB entry for node 2 was gone that long; whether a restart
    // loses anything depends on whether node 1 applied the LEAVE before the new STATE came),
    // never any at node 1's. Bound: 10 s of stream each time, the kubelet starting the new agent
    // plus its first announcement on a loaded machine; beyond that it is an outage, not a restart.
    assert.equal(a.roll.lost + a.restart.lost, 0, `rxa lost datagrams in the rollout or the restart:\n${report.join('\n')}`);
    const LOSS_RESTART = 10 * RATE;
    for (const [name, l] of [
      ['rxb', b],
      ['replacement', rep],
    ] as const) {
      assert.ok(l.roll.lost <= LOSS_RESTART && l.restart.lost <= LOSS_RESTART, `${name} lost more than ${LOSS_RESTART} in the rollout or the restart:\n${report.join('\n')}`);
    }
  } finally {
    await stop();
    await streaming;
  }
});
