/**
 * kmcast's sidecar mode on the lab's real Kubernetes cluster, through the real admission webhook,
 * as root (`npm run test:kube`), done the way docs/kubernetes.md tells a user: `kubectl apply -k
 * deploy/kustomize/base`, then deploy/webhook-certs.sh for the certificate and the caBundle; the
 * app's pods opt in with the label kmcast.io/inject=enabled and name their member set with the
 * annotation kmcast.io/name, and the Service and key Secret are created once, as in
 * deploy/examples/probe-webhook.yaml. One 2-node cluster: a calico-style node (CNI ptp) and a
 * bridge-style node (CNI bridge).
 *
 * In order, each test building on the last:
 * 1. baseline, before kmcast: the labelled app's pods (no webhook yet: created as they are) hear
 *    multicast only from a pod on the same bridge, never across nodes;
 * 2. the webhook installed as documented: two replicas available, the caBundle set;
 * 3. the same Deployment restarted (`kubectl rollout restart`): every new pod got the sidecar
 *    from the API server's call to the webhook, every sidecar sees the other three members, and
 *    every pod hears every other pod's datagrams exactly once (python sockets joined on eth0 by
 *    interface index: the sidecar's eth0 capture); pods without the label, on both nodes, hear
 *    nothing (on the bridge they did before: the sidecar moves what members send into vx0).
 */
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { waitFor } from '../../src/lab/process.js';
import { APPS_IMAGE } from '../../src/lab/kube/plan.js';
import { KMCAST_IMAGE } from '../../src/lab/kube/kmcast-image.js';
import { needRoot, testLabId } from '../netns/harness.js';
import { kubeLabDown, kubeLabUp, nodeName, runner } from './harness.js';
import type { KubeLab } from './harness.js';
import { DEPLOY, Kube, assertExactlyOnce, list, recvPy, roundLines, sendPy } from './kube.js';
import type { Pod } from './kube.js';

const id = testLabId('ks');
let cluster: KubeLab | undefined;
const k = new Kube(() => cluster);

const NS = 'kmc-sidecar';
const GROUP = '239.10.2.1';
const PORT = 7201;
const UPORT = 7202;
const SEND_PY = sendPy(GROUP, PORT, UPORT);
const timings: string[] = [];
const isInjected = (p: Pod): boolean => p.raw.metadata.labels?.['kmcast.io/member'] === 'mc';

/** The user's app: opted in to the webhook by label, its member set named by annotation. */
function appDeployment(name: string, replicas: number, optIn: boolean): Record<string, unknown> {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '100%', maxUnavailable: 0 } },
      template: {
        metadata: { labels: { ...labels, ...(optIn ? { 'kmcast.io/inject': 'enabled' } : {}) }, ...(optIn ? { annotations: { 'kmcast.io/name': 'mc' } } : {}) },
        spec: {
          terminationGracePeriodSeconds: 1,
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: labels }, matchLabelKeys: ['pod-template-hash'] },
          ],
          containers: [{ name: 'app', image: APPS_IMAGE, imagePullPolicy: 'Never', command: ['python3', '-u', '-c', recvPy(GROUP, PORT, UPORT)] }],
        },
      },
    },
  };
}

// The member namespace enforces no Pod Security level: the sidecar needs NET_ADMIN and uid 0
// (docs/kubernetes.md). The headless Service is the members' discovery, as in probe-webhook.yaml.
const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } };
const service = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'mc-kmcast', namespace: NS, labels: { 'kmcast.io/member': 'mc' } },
  spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: { 'kmcast.io/member': 'mc' }, ports: [{ name: 'kmc-control', port: 7470, targetPort: 7470, protocol: 'UDP' }] },
};

async function sendRound(round: string, senders: readonly Pod[], count: number, fenceTo: readonly Pod[]): Promise<void> {
  for (const s of senders) await k.exec(NS, s.name, 'app', ['python3', '-c', SEND_PY, `${round}-${s.name}`, String(count), ...fenceTo.filter((f) => f.name !== s.name).map((f) => f.ip)]);
}

/** Waits until every pod of `fenceTo` has the unicast fence of every sender of the round; their logs. */
async function waitFences(round: string, senders: readonly Pod[], fenceTo: readonly Pod[]): Promise<Map<string, string[]>> {
  const seen = new Map<string, string[]>();
  await waitFor(
    `the unicast fences of round ${round} at every pod`,
    async () => {
      for (const r of fenceTo) {
        const l = await k.logs(NS, r.name, 'app');
        seen.set(r.name, l);
        for (const s of senders) if (s.name !== r.name && !l.includes(`ucast ${s.ip} ${round}-${s.name}-fence`)) return false;
      }
      return true;
    },
    30_000,
    { intervalMs: 500, explain: () => [...seen].map(([p, l]) => `${p}: ${l.slice(-6).join(' | ')}`).join('\n') },
  );
  return seen;
}

interface SidecarStatus {
  ready: boolean;
  peers: Array<{ ip: string; state: string; groups: string[] }>;
  localGroups: string[];
  capture?: { installed: boolean };
}

/** What docs/operations.md has a user run: `kmcast status` in the pod's kmcast container. */
async function sidecarStatus(p: Pod): Promise<SidecarStatus> {
  return JSON.parse(await k.exec(NS, p.name, 'kmcast', ['kmcast', 'status', '--json'])) as SidecarStatus;
}

async function sidecarsEvidence(ps: readonly Pod[]): Promise<string> {
  const out = [await k.show(['-n', NS, 'get', 'pods', '-o', 'wide'])];
  for (const p of ps) {
    out.push(
      `--- ${p.name} (${p.ip}): ${await sidecarStatus(p).then(
        (s) => `ready ${String(s.ready)} local [${s.localGroups.join(',')}] peers ${s.peers.map((x) => `${x.ip} ${x.state} ${x.groups.join(',') || '-'}`).join('; ')}`,
        (e: unknown) => String(e),
      )}`,
    );
    out.push((await k.logs(NS, p.name, 'kmcast').catch((e: unknown) => [String(e)])).slice(-4).join('\n'));
  }
  out.push(await k.events(NS));
  return out.join('\n');
}

before(async () => {
  cluster = await kubeLabUp(id, ['calico', 'bridge']);
});

after(async () => {
  await kubeLabDown(cluster);
  if (timings.length) process.stderr.write(`# sidecar webhook on the cluster: ${timings.join('; ')}\n`);
});

test('baseline without kmcast: the labelled app is created as it is, and multicast stays on a bridge, never crosses nodes', async (t: TestContext) => {
  if (!needRoot(t)) return;
  t.diagnostic(`cluster up in ${cluster!.upSeconds.toFixed(1)} s`);
  // No webhook yet: the opt-in label alone changes nothing.
  assert.equal((await k.kubectl(['get', 'mutatingwebhookconfigurations', '-o', 'name'])).trim(), '');
  await k.kubectl(['apply', '-f', '-'], list([namespace, service, appDeployment('mc', 4, true), appDeployment('outsider', 2, false)]));
  const mc = await k.readyApps(NS, 'app=mc', 4, 180_000);
  const outsiders = await k.readyApps(NS, 'app=outsider', 2, 60_000);
  const n1 = nodeName(id, 1);
  const n2 = nodeName(id, 2);
  assert.deepEqual(
    mc.map((p) => p.node),
    [n1, n1, n2, n2],
    'two app pods on each node',
  );
  for (const p of mc) assert.deepEqual(p.raw.spec.initContainers ?? [], [], `${p.name} was created without a sidecar`);

  const all = [...mc, ...outsiders];
  await sendRound('base', mc, 3, all);
  const seen = await waitFences('base', mc, all);
  for (const r of all) {
    const lines = roundLines(seen.get(r.name) ?? [], 'base');
    for (const s of mc) {
      if (s.name === r.name) continue;
      const from = lines.filter((l) => l.startsWith(`${s.ip} base-${s.name}-`));
      if (s.node !== r.node) assert.deepEqual(from, [], `${r.name} (${r.node}) heard ${s.name} (${s.node}) across nodes without kmcast`);
      // The positive control: the bridge CNI floods multicast to the pods on its bridge.
      else if (r.node === n2) assert.equal(from.length, 3, `${r.name} hears ${s.name} on the same bridge: ${lines.join(' | ')}`);
    }
  }
});

test('the webhook installed as docs/kubernetes.md says: kubectl apply -k deploy/kustomize/base, then deploy/webhook-certs.sh', async (t: TestContext) => {
  if (!needRoot(t)) return;
  const started = Date.now();
  const applied = await k.kubectlFull(['apply', '-k', join(DEPLOY, 'kustomize', 'base')]);
  assert.doesNotMatch(applied.stderr, /warning/i, 'kubectl apply -k deploy/kustomize/base warns');
  assert.match(applied.stdout, /mutatingwebhookconfiguration\.admissionregistration\.k8s\.io\/kmcast created/);
  // The script runs kubectl and openssl as a user's shell would, against this cluster.
  const certs = await runner.run(['env', `KUBECONFIG=${k.config}`, 'sh', join(DEPLOY, 'webhook-certs.sh')], { allowFail: true, timeoutMs: 60_000 });
  assert.equal(certs.code, 0, `webhook-certs.sh:\n${certs.stdout}${certs.stderr}`);
  assert.match(certs.stdout, /certificate for kmcast-webhook\.kmcast-system\.svc installed/);
  const ca = (await k.kubectl(['get', 'mutatingwebhookconfiguration', 'kmcast', '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}'])).trim();
  assert.match(Buffer.from(ca, 'base64').toString(), /BEGIN CERTIFICATE/);
  await waitFor(
    'the webhook Deployment: 2 replicas available',
    async () => {
      const d = JSON.parse(await k.kubectl(['-n', 'kmcast-system', 'get', 'deployment', 'kmcast-webhook', '-o', 'json'])) as { status: { availableReplicas?: number; updatedReplicas?: number } };
      return d.status.availableReplicas === 2 && d.status.updatedReplicas === 2;
    },
    180_000,
    { intervalMs: 1000, explain: async () => `${await k.show(['-n', 'kmcast-system', 'get', 'pods', '-o', 'wide'])}\n${await k.events('kmcast-system')}` },
  );
  const webhooks = await k.pods('kmcast-system', 'app.kubernetes.io/component=webhook');
  for (const w of webhooks) assert.equal(w.raw.spec.containers[0]?.image, KMCAST_IMAGE);
  timings.push(`webhook installed and available ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test('pods created with the inject label get the sidecar from the webhook, and hear each other across nodes exactly once; unlabelled pods nothing', async (t: TestContext) => {
  if (!needRoot(t)) return;
  // The key Secret, as docs/kubernetes.md says for the webhook (it changes pods only).
  const key = (await runner.run(['openssl', 'rand', '-hex', '32'])).stdout.trim();
  await k.kubectl(['-n', NS, 'create', 'secret', 'generic', 'mc-kmcast-key', `--from-literal=key=${key}`]);
  const restarted = Date.now();
  await k.kubectl(['-n', NS, 'rollout', 'restart', 'deployment/mc']);
  const mc = await k.readyApps(NS, 'app=mc', 4, 240_000, isInjected);
  timings.push(`rollout restart to 4 injected pods running ${((Date.now() - restarted) / 1000).toFixed(1)} s`);
  const n1 = nodeName(id, 1);
  const n2 = nodeName(id, 2);
  assert.deepEqual(
    mc.map((p) => p.node),
    [n1, n1, n2, n2],
  );
  for (const p of mc) {
    // What the webhook added: the agent as a native sidecar (first init container, restartPolicy
    // Always, NET_ADMIN), the status annotation, the member label; the app started after it.
    const [sc] = p.raw.spec.initContainers ?? [];
    assert.equal(sc?.name, 'kmcast', `${p.name}: ${JSON.stringify(p.raw.spec.initContainers)}`);
    assert.equal(sc.restartPolicy, 'Always');
    assert.equal(sc.image, KMCAST_IMAGE);
    assert.deepEqual(sc.securityContext?.capabilities?.add, ['NET_ADMIN']);
    assert.match(p.raw.metadata.annotations?.['kmcast.io/status'] ?? '', /"initContainers":\["kmcast"\]/);
    const init = p.raw.status.initContainerStatuses?.find((c) => c.name === 'kmcast');
    assert.ok(init?.state?.running && init.ready === true, `${p.name} sidecar: ${JSON.stringify(init)}`);
  }
  // Discovery is the Service's DNS records, so a sidecar may start before the cluster DNS lists
  // every new pod (kubeadm's Corefile: up to 30 s late): wait until each knows the other three
  // alive with the group joined.
  const ips = mc.map((p) => p.ip);
  const known = Date.now();
  await waitFor(
    'every sidecar ready, capturing on eth0, with the other three members alive and joined',
    async () => {
      for (const p of mc) {
        const s = await sidecarStatus(p);
        if (!s.ready || s.capture?.installed !== true || !s.localGroups.includes(GROUP)) return false;
        for (const ip of ips) if (ip !== p.ip && !s.peers.some((x) => x.ip === ip && x.state === 'alive' && x.groups.includes(GROUP))) return false;
      }
      return true;
    },
    90_000,
    { intervalMs: 1000, explain: async () => await sidecarsEvidence(mc) },
  );
  timings.push(`every sidecar knowing every member ${((Date.now() - known) / 1000).toFixed(1)} s later`);

  const outsiders = await k.pods(NS, 'app=outsider');
  const COUNT = 5;
  await sendRound('r1', mc, COUNT, [...mc, ...outsiders]);
  await waitFor(
    "every member to hear every other member's round r1",
    async () => {
      for (const r of mc) {
        const lines = roundLines(await k.logs(NS, r.name, 'app'), 'r1');
        for (const s of mc) if (s.name !== r.name && lines.filter((l) => l.startsWith(`${s.ip} r1-${s.name}-`)).length < COUNT) return false;
      }
      return true;
    },
    30_000,
    {
      intervalMs: 500,
      explain: async () => `${(await Promise.all(mc.map(async (r) => `${r.name}: ${roundLines(await k.logs(NS, r.name, 'app'), 'r1').join(' | ')}`))).join('\n')}\n${await sidecarsEvidence(mc)}`,
    },
  );
  // A second round as the fence: a late duplicate of r1 would have come by the time r2 did.
  await sendRound('r2', mc, 1, [...mc, ...outsiders]);
  await waitFor(
    'round r2 at every member (the fence)',
    async () => {
      for (const r of mc) {
        const l = await k.logs(NS, r.name, 'app');
        for (const s of mc) if (s.name !== r.name && !l.includes(`mcast ${s.ip} r2-${s.name}-0`)) return false;
      }
      return true;
    },
    30_000,
    { intervalMs: 500, explain: async () => await sidecarsEvidence(mc) },
  );
  await waitFences('r2', mc, outsiders);
  const logsOf = new Map<string, string[]>();
  for (const r of mc) logsOf.set(r.name, await k.logs(NS, r.name, 'app'));
  assertExactlyOnce(logsOf, mc, 'r1', COUNT);
  for (const o of outsiders) {
    const l = await k.logs(NS, o.name, 'app');
    assert.deepEqual(
      l.filter((x) => x.startsWith('mcast ') && / r[12]-/.test(x)),
      [],
      `${o.name} (${o.node}) has no sidecar: it hears nothing of the members`,
    );
  }
});
