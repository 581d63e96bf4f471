/**
 * kmcast node mode on the lab's real Kubernetes cluster, as root (`npm run test:kube`), done the
 * way docs/kubernetes.md tells a user: deploy/node applied with kubectl, its key Secret, the domains
 * in its ConfigMap, and apps run through `kmcast inject --mode node`. One 2-node cluster: a
 * calico-style node (CNI ptp) and a bridge-style node (CNI bridge).
 *
 * In order, each test building on the last:
 * 1. baseline, before kmcast: app pods (unprivileged, in a namespace enforcing Pod Security
 *    `restricted`) hear multicast only from a pod on the same bridge, never across nodes; two
 *    keepalived pods on two nodes both become MASTER;
 * 2. node mode installed from deploy/node: the agents run on both nodes with the apps' domains;
 * 3. the injected app is admitted by the API server, waits in kmcast-wait until its node agent has
 *    programmed it, and then every pod hears every other pod's datagrams exactly once (joined on
 *    eth0 by interface index); pods outside the domain hear nothing;
 * 4. iperf2 between pods of different nodes, 1200-byte and default (1470-byte) datagrams: no loss;
 * 5. the injected keepalived pair elects exactly one MASTER.
 */
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { KMCAST_MAIN, NODE_AGENT_HTTP_PORT, netnsFetch, settle, waitFor } from '../../src/lab/process.js';
import { APPS_IMAGE } from '../../src/lab/kube/plan.js';
import { needRoot, testLabId } from '../netns/harness.js';
import { kubeLabDown, kubeLabUp, kubeconfigOf, kubectlWith, nodeName, runner } from './harness.js';
import type { KubeLab } from './harness.js';
import { recvPy, sendPy } from './kube.js';

const id = testLabId('kn');
let cluster: KubeLab | undefined;
const work = mkdtempSync(join(tmpdir(), 'kmc-kube-node-'));
const DEPLOY_NODE = fileURLToPath(new URL('../../../deploy/node', import.meta.url));

const APP_NS = 'kmc-mcast';
const VRRP_NS = 'kmc-vrrp';
const GROUP = '239.10.1.1';
const PORT = 7101;
const UPORT = 7102;
const IPERF_GROUP = '239.10.1.2';
const VIP = '10.250.0.1';
/** Set by the tests in order. */
const domains: { mc?: string; ka?: string } = {};
const timings: string[] = [];

// The app and the sender: the shared scripts (kube.ts), on this file's group and ports.
const POD_PY = recvPy(GROUP, PORT, UPORT);
const SEND_PY = sendPy(GROUP, PORT, UPORT);

const KEEPALIVED_CONF = `global_defs {
  router_id kmc
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 1
  virtual_ipaddress {
    ${VIP}/32
  }
}
`;

const restrictedPod = {
  runAsNonRoot: true,
  runAsUser: 65534,
  runAsGroup: 65534,
  seccompProfile: { type: 'RuntimeDefault' },
};
const restrictedContainer = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };

/** An app Deployment of the python program, unprivileged, spread evenly over the nodes. */
function appDeployment(name: string, replicas: number): Record<string, unknown> {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: APP_NS },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      // All new pods at once: one wait for the domain instead of one per rolling step.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '100%', maxUnavailable: 0 } },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: 1,
          securityContext: restrictedPod,
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: labels }, matchLabelKeys: ['pod-template-hash'] },
          ],
          containers: [{ name: 'app', image: APPS_IMAGE, imagePullPolicy: 'Never', command: ['python3', '-u', '-c', POD_PY], securityContext: restrictedContainer }],
        },
      },
    },
  };
}

const appNamespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: APP_NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } };

/** keepalived with `interface eth0` in two pods on two nodes (it needs NET_ADMIN and NET_RAW: not restricted). */
function keepalivedObjects(): Array<Record<string, unknown>> {
  const labels = { app: 'ka' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: VRRP_NS } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'keepalived', namespace: VRRP_NS }, data: { 'keepalived.conf': KEEPALIVED_CONF } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'ka', namespace: VRRP_NS },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        // One pod per node (required anti-affinity): a surge pod would find no node.
        strategy: { type: 'Recreate' },
        template: {
          metadata: { labels },
          spec: {
            terminationGracePeriodSeconds: 1,
            affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: labels }, topologyKey: 'kubernetes.io/hostname' }] } },
            containers: [
              {
                name: 'keepalived',
                image: APPS_IMAGE,
                imagePullPolicy: 'Never',
                command: ['keepalived', '--dont-fork', '--log-console', '--vrrp', '--no-syslog', '-f', '/etc/keepalived/keepalived.conf'],
                securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } },
                volumeMounts: [{ name: 'conf', mountPath: '/etc/keepalived' }],
              },
            ],
            volumes: [{ name: 'conf', configMap: { name: 'keepalived' } }],
          },
        },
      },
    },
  ];
}

const list = (items: Array<Record<string, unknown>>): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });

async function kubectl(args: readonly string[], input?: string, timeoutMs = 30_000): Promise<string> {
  return await kubectlWith(kubeconfigOf(cluster), args, input, timeoutMs);
}

/** kubectl returning stdout and stderr (warnings), throwing on a non-zero exit. */
async function kubectlFull(args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  const r = await runner.run(['kubectl', `--kubeconfig=${kubeconfigOf(cluster)}`, ...args], { allowFail: true, timeoutMs: 60_000, ...(input === undefined ? {} : { input }) });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

const show = async (args: readonly string[]): Promise<string> => await kubectl(args).catch((e: unknown) => String(e));

/** `kmcast ARGS` of this checkout, as a user runs it; stdout and stderr (the report). */
async function kmcast(args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await runner.run([process.execPath, KMCAST_MAIN, ...args], { allowFail: true, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`kmcast ${args.join(' ')}: exit ${String(r.code)}: ${r.stderr.trim()}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** `kmcast inject --mode node` (or another mode) of objects written to a file; the domain its report names. */
async function inject(name: string, objects: Array<Record<string, unknown>>, mode = 'node'): Promise<{ yaml: string; report: string; domain?: string }> {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, list(objects));
  const r = await kmcast(['inject', '--mode', mode, '-f', file]);
  const domain = /add the domain (\S+) to the kmcast-node DaemonSet/.exec(r.stderr)?.[1];
  return { yaml: r.stdout, report: r.stderr, ...(domain ? { domain } : {}) };
}

interface Pod {
  readonly name: string;
  readonly ip: string;
  readonly node: string;
  readonly phase: string;
  readonly deleting: boolean;
  readonly raw: PodJson;
}

interface ContainerStatus {
  readonly name: string;
  readonly ready?: boolean;
  readonly state?: { running?: { startedAt: string }; terminated?: { exitCode: number; reason?: string; startedAt?: string; finishedAt: string }; waiting?: { reason?: string } };
}

interface PodJson {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string; creationTimestamp: string };
  spec: { nodeName?: string; initContainers?: Array<{ name: string }> };
  status: { phase?: string; podIP?: string; initContainerStatuses?: ContainerStatus[]; containerStatuses?: ContainerStatus[] };
}

async function pods(ns: string, selector: string): Promise<Pod[]> {
  const items = (JSON.parse(await kubectl(['-n', ns, 'get', 'pods', '-l', selector, '-o', 'json'])) as { items: PodJson[] }).items;
  return items
    .map((p) => ({ name: p.metadata.name, ip: p.status.podIP ?? '', node: p.spec.nodeName ?? '', phase: p.status.phase ?? '', deleting: p.metadata.deletionTimestamp !== undefined, raw: p }))
    .sort((a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name));
}

async function logs(ns: string, pod: string, container?: string): Promise<string[]> {
  return (await kubectl(['-n', ns, 'logs', pod, ...(container ? ['-c', container] : [])])).split('\n').filter((l) => l !== '');
}

async function exec(ns: string, pod: string, container: string, argv: readonly string[], timeoutMs = 60_000): Promise<string> {
  return await kubectl(['-n', ns, 'exec', pod, '-c', container, '--', ...argv], undefined, timeoutMs);
}

/** Running, with every container started and no pod of an older template left: the pods of `selector`. */
async function settledPods(ns: string, selector: string, count: number, want: (p: Pod) => boolean = () => true): Promise<Pod[] | undefined> {
  const ps = await pods(ns, selector);
  if (ps.length !== count || ps.some((p) => p.deleting || p.phase !== 'Running' || !want(p))) return undefined;
  if (ps.some((p) => (p.raw.status.containerStatuses ?? []).some((c) => !c.state?.running))) return undefined;
  return ps;
}

/** The node agent's /status on lab node i (its loopback: /status is not served to others). */
async function agentStatus(i: number): Promise<AgentStatus> {
  const r = await netnsFetch(nodeName(id, i), '/status', NODE_AGENT_HTTP_PORT);
  if (r.status !== 200) throw new Error(`node ${i} /status: HTTP ${r.status}: ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as AgentStatus;
}

interface AgentStatus {
  ready: boolean;
  domains: Array<{
    service: string;
    listed: string[];
    localMembers: Array<{ podIp: string; programmed: boolean; reason?: string; groups: string[] }>;
    peers: Array<{ ip: string; state: string; groups: string[] }>;
    peerNodes?: { degraded: boolean; waitingFor: string[] };
    entries: { fdb: number; mdb: number };
  }>;
}

/** A short view of both agents for failure messages. */
async function agentsEvidence(): Promise<string> {
  const out: string[] = [];
  for (const i of [1, 2]) {
    try {
      const s = await agentStatus(i);
      out.push(
        `agent on ${nodeName(id, i)}: ready ${String(s.ready)}; ` +
          s.domains
            .map(
              (d) =>
                `${d.service}: listed [${d.listed.join(' ')}] local [${d.localMembers.map((m) => `${m.podIp}${m.programmed ? '' : `(${m.reason ?? 'not programmed'})`} groups ${m.groups.join(',') || '-'}`).join('; ')}] ` +
                `peers [${d.peers.map((p) => `${p.ip} ${p.state} ${p.groups.join(',') || '-'}`).join('; ')}] fdb ${d.entries.fdb} mdb ${d.entries.mdb}`,
            )
            .join(' | '),
      );
    } catch (err) {
      out.push(`agent on ${nodeName(id, i)}: ${String(err)}`);
    }
  }
  out.push(await show(['-n', 'kmcast-node', 'get', 'pods', '-o', 'wide']));
  out.push(await show(['-n', 'kmcast-node', 'logs', '--tail=8', '-l', 'app.kubernetes.io/component=node', '--prefix']));
  return out.join('\n');
}

/** Pods, their kmcast-wait logs and the agents, for failure messages. */
async function appEvidence(ns: string, selector: string): Promise<string> {
  const out = [await show(['-n', ns, 'get', 'pods', '-o', 'wide', '-l', selector])];
  for (const p of await pods(ns, selector).catch(() => [])) {
    if ((p.raw.spec.initContainers ?? []).some((c) => c.name === 'kmcast-wait'))
      out.push(`--- ${p.name} kmcast-wait:\n${(await logs(ns, p.name, 'kmcast-wait').catch((e: unknown) => [String(e)])).slice(-4).join('\n')}`);
  }
  out.push(await show(['-n', ns, 'get', 'events', '--sort-by=.lastTimestamp']).then((e) => e.split('\n').slice(-10).join('\n')));
  out.push(await agentsEvidence());
  return out.join('\n');
}

/** One round: each sender sends `count` datagrams tagged "<round>-<sender>", then unicast fences to `fenceTo`. */
async function sendRound(round: string, senders: readonly Pod[], count: number, fenceTo: readonly Pod[]): Promise<void> {
  for (const s of senders) await exec(APP_NS, s.name, 'app', ['python3', '-c', SEND_PY, `${round}-${s.name}`, String(count), ...fenceTo.filter((f) => f.name !== s.name).map((f) => f.ip)]);
}

/** Waits until every pod of `fenceTo` has the unicast fence of every sender of the round. */
async function waitFences(round: string, senders: readonly Pod[], fenceTo: readonly Pod[]): Promise<Map<string, string[]>> {
  const seen = new Map<string, string[]>();
  await waitFor(
    `the unicast fences of round ${round} at every pod`,
    async () => {
      for (const r of fenceTo) {
        const l = await logs(APP_NS, r.name, 'app');
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

/** Multicast lines of `round` in a receiver's log, as "source payload". */
function roundLines(lines: readonly string[], round: string): string[] {
  return lines.filter((l) => l.startsWith('mcast ') && l.split(' ')[2]?.startsWith(`${round}-`) === true && !l.endsWith('-fence')).map((l) => l.slice('mcast '.length));
}

/** The keepalived pods holding the VIP on eth0, and each pod's last VRRP state. */
async function vrrpState(): Promise<{ holders: string[]; states: Record<string, string>; pods: Pod[] }> {
  const ps = await pods(VRRP_NS, 'app=ka');
  const holders: string[] = [];
  const states: Record<string, string> = {};
  for (const p of ps) {
    if (p.deleting || p.phase !== 'Running') continue;
    if ((await exec(VRRP_NS, p.name, 'keepalived', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).includes(` ${VIP}/32 `)) holders.push(p.name);
    const st = (await logs(VRRP_NS, p.name, 'keepalived')).map((l) => /\(VI_1\) Entering (\w+) STATE/.exec(l)?.[1]).filter((s): s is string => s !== undefined);
    states[p.name] = st.at(-1) ?? 'none';
  }
  return { holders, states, pods: ps };
}

async function vrrpEvidence(): Promise<string> {
  const out = [await show(['-n', VRRP_NS, 'get', 'pods', '-o', 'wide'])];
  for (const p of await pods(VRRP_NS, 'app=ka').catch(() => [])) out.push(`--- ${p.name}:\n${(await logs(VRRP_NS, p.name, 'keepalived').catch((e: unknown) => [String(e)])).slice(-5).join('\n')}`);
  out.push(await agentsEvidence());
  return out.join('\n');
}

before(async () => {
  cluster = await kubeLabUp(id, ['calico', 'bridge']);
});

after(async () => {
  rmSync(work, { recursive: true, force: true });
  await kubeLabDown(cluster);
  if (timings.length) process.stderr.write(`# node mode on the cluster: ${timings.join('; ')}\n`);
});

test('baseline without kmcast: multicast stays on a bridge, never crosses nodes; two keepalived pods are both MASTER', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfigOf(cluster);
  t.diagnostic(`cluster up in ${cluster!.upSeconds.toFixed(1)} s`);
  // The user's app (4 replicas) and pods that will stay outside the domain (one per node).
  await kubectl(['apply', '-f', '-'], list([appNamespace, appDeployment('mc', 4), appDeployment('outsider', 2)]));
  await kubectl(['apply', '-f', '-'], list(keepalivedObjects()));
  const ready = async (selector: string, n: number): Promise<Pod[]> =>
    await waitFor(
      `${n} pods ${selector} running and printing "ready"`,
      async () => {
        const ps = await settledPods(APP_NS, selector, n);
        if (!ps) return undefined;
        for (const p of ps) if (!(await logs(APP_NS, p.name, 'app')).some((l) => l.startsWith('ready '))) return undefined;
        return ps;
      },
      180_000,
      { intervalMs: 1000, explain: async () => await appEvidence(APP_NS, selector) },
    );
  const mc = await ready('app=mc', 4);
  const outsiders = await ready('app=outsider', 2);
  const n1 = nodeName(id, 1);
  const n2 = nodeName(id, 2);
  assert.deepEqual(
    mc.map((p) => p.node),
    [n1, n1, n2, n2],
    'two app pods on each node',
  );
  assert.deepEqual(
    outsiders.map((p) => p.node),
    [n1, n2],
  );

  const all = [...mc, ...outsiders];
  await sendRound('base', mc, 3, all);
  const seen = await waitFences('base', mc, all);
  for (const r of all) {
    const lines = roundLines(seen.get(r.name) ?? [], 'base');
    const from = (p: Pod): string[] => lines.filter((l) => l.startsWith(`${p.ip} base-${p.name}-`));
    for (const s of mc) {
      if (s.name === r.name) continue;
      if (s.node !== r.node) assert.deepEqual(from(s), [], `${r.name} (${r.node}) heard ${s.name} (${s.node}) across nodes without kmcast`);
      // The positive control: on the bridge node the CNI's bridge floods multicast to its ports.
      else if (r.node === n2) assert.equal(from(s).length, 3, `${r.name} hears ${s.name} on the same bridge: ${lines.join(' | ')}`);
    }
  }

  // keepalived: each pod hears no advert from the other, so both take the VIP.
  const vr = await waitFor(
    'both keepalived pods MASTER holding the VIP',
    async () => {
      const s = await vrrpState();
      return s.holders.length === 2 && Object.values(s.states).every((x) => x === 'MASTER') ? s : undefined;
    },
    120_000,
    { intervalMs: 1000, explain: vrrpEvidence },
  );
  assert.deepEqual(new Set(vr.pods.map((p) => p.node)), new Set([n1, n2]));
});

test('node mode installed as docs/kubernetes.md says: namespace, key Secret, kubectl apply -k deploy/node, the domains in the ConfigMap', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfigOf(cluster);
  const started = Date.now();
  // Baseline: no agent yet.
  assert.equal((await kubectl(['get', 'daemonsets', '-A', '-o', 'name'])).trim(), '');
  await kubectl(['apply', '-f', join(DEPLOY_NODE, 'namespace.yaml')]);
  const key = (await runner.run(['openssl', 'rand', '-hex', '32'])).stdout.trim();
  assert.match(key, /^[0-9a-f]{64}$/);
  await kubectl(['-n', 'kmcast-node', 'create', 'secret', 'generic', 'kmcast-node-key', `--from-literal=key=${key}`]);
  const applied = await kubectlFull(['apply', '-k', DEPLOY_NODE]);
  assert.doesNotMatch(applied.stderr, /warning/i, 'kubectl apply -k deploy/node warns');
  assert.match(applied.stdout, /daemonset\.apps\/kmcast-node created/);

  // The domains, as inject's reports name them, into the ConfigMap (what `kubectl edit` does), then
  // the agents restarted to read them.
  const mc = await inject('mc', [appNamespace, appDeployment('mc', 4)]);
  const ka = await inject('ka', keepalivedObjects());
  assert.ok(mc.domain && ka.domain, `${mc.report}\n${ka.report}`);
  domains.mc = mc.domain;
  domains.ka = ka.domain;
  assert.equal(domains.mc, `mc-kmcast.${APP_NS}.svc.cluster.local`);
  assert.match(mc.report, /the pods pass Pod Security "restricted"/);
  await kubectl(['-n', 'kmcast-node', 'patch', 'configmap', 'kmcast-node', '--type=merge', '-p', JSON.stringify({ data: { services: `${domains.mc},${domains.ka}` } })]);
  await kubectl(['-n', 'kmcast-node', 'rollout', 'restart', 'daemonset/kmcast-node']);
  await waitFor(
    'the kmcast-node DaemonSet rolled out and ready on both nodes',
    async () => {
      const ds = JSON.parse(await kubectl(['-n', 'kmcast-node', 'get', 'daemonset', 'kmcast-node', '-o', 'json'])) as {
        metadata: { generation: number };
        status: { observedGeneration?: number; desiredNumberScheduled?: number; updatedNumberScheduled?: number; numberReady?: number; numberAvailable?: number };
      };
      const s = ds.status;
      if (s.observedGeneration !== ds.metadata.generation || s.desiredNumberScheduled !== 2 || s.updatedNumberScheduled !== 2 || s.numberAvailable !== 2) return undefined;
      const agents = await pods('kmcast-node', 'app.kubernetes.io/component=node');
      return agents.length === 2 && agents.every((p) => !p.deleting && (p.raw.status.containerStatuses ?? []).every((c) => c.ready === true));
    },
    180_000,
    { intervalMs: 1000, explain: async () => `${await show(['-n', 'kmcast-node', 'describe', 'pods'])}\n${await agentsEvidence()}` },
  );
  timings.push(`install to agents ready ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const i of [1, 2]) {
    const s = await agentStatus(i);
    assert.equal(s.ready, true);
    assert.deepEqual(s.domains.map((d) => d.service).sort(), [domains.mc, domains.ka].sort());
  }
  // What docs/operations.md has the user run in the agent's pod.
  const [agent] = await pods('kmcast-node', 'app.kubernetes.io/component=node');
  assert.ok(agent);
  const status = await exec('kmcast-node', agent.name, 'node', ['kmcast', 'status', '--node']);
  assert.ok(status.includes(domains.mc), status);
  const doctor = await runner.run(['kubectl', `--kubeconfig=${kubeconfigOf(cluster)}`, '-n', 'kmcast-node', 'exec', agent.name, '-c', 'node', '--', 'kmcast', 'doctor', '--node'], {
    allowFail: true,
    timeoutMs: 60_000,
  });
  assert.equal(doctor.code, 0, `kmcast doctor --node in ${agent.name}:\n${doctor.stdout}${doctor.stderr}`);
});

test('the injected app is admitted under Pod Security restricted, waits until programmed, then every pod hears every other exactly once; outsiders nothing', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfigOf(cluster);
  assert.ok(domains.mc, 'node mode is installed');
  const n1 = nodeName(id, 1);
  const n2 = nodeName(id, 2);
  const objects = [appNamespace, appDeployment('mc', 4)];
  const injected = await inject('mc', objects);

  // Admission, by the real API server: a pod of the sidecar-injected app is refused in this
  // namespace (the baseline: the namespace really enforces restricted), the node-mode pod is not.
  const asPod = (yaml: string, name: string): string => {
    type Obj = { kind?: string; items?: Obj[]; spec?: { template: { metadata: Record<string, unknown>; spec: Record<string, unknown> } } };
    const dep = parseAllDocuments(yaml)
      .flatMap((d) => {
        const o = d.toJS() as Obj;
        return o.kind === 'List' ? (o.items ?? []) : [o];
      })
      .find((o) => o.kind === 'Deployment');
    assert.ok(dep?.spec, `no Deployment in ${name}`);
    return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { ...dep.spec.template.metadata, name: `admission-${name}`, namespace: APP_NS }, spec: dep.spec.template.spec });
  };
  const sidecar = await inject('mc-sidecar', objects, 'sidecar');
  const refused = await kubectl(['apply', '--dry-run=server', '-f', '-'], asPod(sidecar.yaml, 'sidecar')).then(
    () => 'admitted',
    (e: unknown) => String(e),
  );
  assert.match(refused, /violates PodSecurity "restricted/, 'the sidecar-injected pod must be refused here');
  await kubectl(['apply', '--dry-run=server', '-f', '-'], asPod(injected.yaml, 'node'));

  const applied = Date.now();
  const file = join(work, 'mc.kmcast.yaml');
  writeFileSync(file, injected.yaml);
  await kubectl(['apply', '-f', file]);
  const isMember = (p: Pod): boolean => p.raw.metadata.labels?.['kmcast.io/member'] === 'mc';
  const mc = await waitFor(
    'the 4 injected pods running (their kmcast-wait done) and no old pod left',
    async () => {
      const ps = await settledPods(APP_NS, 'app=mc', 4, isMember);
      if (!ps) return undefined;
      for (const p of ps) if (!(await logs(APP_NS, p.name, 'app')).some((l) => l.startsWith('ready '))) return undefined;
      return ps;
    },
    240_000,
    { intervalMs: 1000, explain: async () => await appEvidence(APP_NS, 'app=mc') },
  );
  timings.push(`injected app applied to all 4 pods running ${((Date.now() - applied) / 1000).toFixed(1)} s`);
  assert.deepEqual(
    mc.map((p) => p.node),
    [n1, n1, n2, n2],
  );
  const waits: string[] = [];
  for (const p of mc) {
    // kmcast-wait ran first, succeeded after its node agent said programmed, and only then did the app start.
    const init = p.raw.status.initContainerStatuses?.find((c) => c.name === 'kmcast-wait');
    assert.equal(init?.state?.terminated?.exitCode, 0, `${p.name}: ${JSON.stringify(init)}`);
    const app = p.raw.status.containerStatuses?.find((c) => c.name === 'app');
    assert.ok(app?.state?.running && Date.parse(app.state.running.startedAt) >= Date.parse(init.state.terminated.finishedAt), `${p.name}: the app started before kmcast-wait ended`);
    const wl = await logs(APP_NS, p.name, 'kmcast-wait');
    const done = wl.find((l) => l.includes(`pod ${p.ip} is programmed in domain ${domains.mc}`));
    assert.ok(done, `${p.name} kmcast-wait:\n${wl.join('\n')}`);
    waits.push(`${p.name.slice(-5)} ${/after ([\d.]+ s)/.exec(done)?.[1] ?? '?'}`);
    assert.doesNotMatch(done, /DEGRADED/, done);
    const api = await netnsFetch(p.node, `/v1/pods/${p.ip}`, NODE_AGENT_HTTP_PORT);
    assert.equal((JSON.parse(api.body) as { programmed?: boolean }).programmed, true, api.body);
  }
  timings.push(`kmcast-wait per pod: ${waits.join(', ')}`);
  t.diagnostic(`kmcast-wait per pod: ${waits.join(', ')}`);

  // Every member joined the group on eth0, and each node announced it to the other.
  await waitFor(
    `both agents to see the group ${GROUP} joined by their members and by the other node`,
    async () => {
      for (const i of [1, 2]) {
        const d = (await agentStatus(i)).domains.find((x) => x.service === domains.mc);
        if (!d || d.localMembers.length !== 2 || d.localMembers.some((m) => !m.groups.includes(GROUP))) return false;
        if (!d.peers.some((p) => p.state === 'alive' && p.groups.includes(GROUP))) return false;
      }
      return true;
    },
    30_000,
    { intervalMs: 500, explain: agentsEvidence },
  );

  const outsiders = await pods(APP_NS, 'app=outsider');
  const COUNT = 5;
  await sendRound('r1', mc, COUNT, [...mc, ...outsiders]);
  // All of round r1 at every member, then a second round as the fence: a late duplicate of r1
  // would have arrived by the time r2 did on the same path.
  await waitFor(
    "every member to hear every other member's round r1",
    async () => {
      for (const r of mc) {
        const lines = roundLines(await logs(APP_NS, r.name, 'app'), 'r1');
        for (const s of mc) if (s.name !== r.name && lines.filter((l) => l.startsWith(`${s.ip} r1-${s.name}-`)).length < COUNT) return false;
      }
      return true;
    },
    30_000,
    {
      intervalMs: 500,
      explain: async () => `${(await Promise.all(mc.map(async (r) => `${r.name}: ${roundLines(await logs(APP_NS, r.name, 'app'), 'r1').join(' | ')}`))).join('\n')}\n${await agentsEvidence()}`,
    },
  );
  await sendRound('r2', mc, 1, [...mc, ...outsiders]);
  await waitFor(
    'round r2 at every member (the fence)',
    async () => {
      for (const r of mc) {
        const l = await logs(APP_NS, r.name, 'app');
        for (const s of mc) if (s.name !== r.name && !l.includes(`mcast ${s.ip} r2-${s.name}-0`)) return false;
      }
      return true;
    },
    30_000,
    { intervalMs: 500, explain: agentsEvidence },
  );
  await waitFences('r2', mc, outsiders);
  for (const r of mc) {
    const lines = roundLines(await logs(APP_NS, r.name, 'app'), 'r1');
    for (const s of mc) {
      if (s.name === r.name) continue;
      const got = lines.filter((l) => l.startsWith(`${s.ip} r1-${s.name}-`)).sort();
      const want = Array.from({ length: COUNT }, (_, i) => `${s.ip} r1-${s.name}-${i}`).sort();
      assert.deepEqual(got, want, `${r.name} (${r.node}) from ${s.name} (${s.node}): each datagram exactly once`);
    }
  }
  // Outside the domain: nothing of the members' rounds, on the calico node and on the bridge the
  // members share (where, without kmcast, the bridge flooded them: the baseline).
  for (const o of outsiders) {
    const l = await logs(APP_NS, o.name, 'app');
    assert.deepEqual(
      l.filter((x) => x.startsWith('mcast ') && / r[12]-/.test(x)),
      [],
      `${o.name} (${o.node}) is outside the domain`,
    );
  }
});

test('iperf2 between app pods on different nodes: 1200-byte and default 1470-byte datagrams at 3 Mbit/s without loss', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfigOf(cluster);
  assert.ok(domains.mc, 'node mode is installed');
  const mc = (await pods(APP_NS, 'app=mc')).filter((p) => !p.deleting);
  const a = mc.find((p) => p.node === nodeName(id, 1));
  const b = mc.find((p) => p.node === nodeName(id, 2));
  assert.ok(a && b, 'an app pod on each node');
  const results: string[] = [];
  for (const [from, to, len] of [
    [a, b, 1200],
    [b, a, undefined],
  ] as const) {
    const out = `/tmp/iperf-${len ?? 'default'}.txt`;
    // The server (unprivileged, in the app pod) joins the group; the sender's node must have heard
    // the join before the client starts.
    const pid = (await exec(APP_NS, to.name, 'app', ['sh', '-c', `iperf -s -u -B ${IPERF_GROUP} > ${out} 2>&1 & echo $!`])).trim();
    assert.match(pid, /^\d+$/);
    const fromNode = from.node === nodeName(id, 1) ? 1 : 2;
    await waitFor(
      `the agent on ${from.node} to have ${to.node}'s join of ${IPERF_GROUP}`,
      async () => (await agentStatus(fromNode)).domains.find((d) => d.service === domains.mc)?.peers.some((p) => p.groups.includes(IPERF_GROUP)) === true,
      20_000,
      { intervalMs: 250, explain: async () => `${await exec(APP_NS, to.name, 'app', ['cat', out]).catch((e: unknown) => String(e))}\n${await agentsEvidence()}` },
    );
    const client = await exec(APP_NS, from.name, 'app', ['iperf', '-c', IPERF_GROUP, '-u', '-b', '3M', '-t', '5', '-T', '1', ...(len ? ['-l', String(len)] : [])]);
    const sent = Number(/Sent (\d+) datagrams/.exec(client)?.[1] ?? NaN);
    assert.ok(sent > 1000, client);
    const report = await waitFor(
      `the iperf server's report in ${to.name}`,
      async () => /(\d+)\/\s*(\d+) \(([\d.e+-]+)%\)/.exec(await exec(APP_NS, to.name, 'app', ['cat', out])) ?? undefined,
      20_000,
      { intervalMs: 500, explain: async () => `${await exec(APP_NS, to.name, 'app', ['cat', out]).catch((e: unknown) => String(e))}\n${client}` },
    );
    await exec(APP_NS, to.name, 'app', ['kill', pid]);
    const [lost, total] = [Number(report[1]), Number(report[2])];
    const line = `${len ?? 1470} B ${from.node}->${to.node}: sent ${sent}, lost ${lost}/${total} (${report[3]}%)`;
    results.push(line);
    t.diagnostic(line);
    assert.ok(total >= sent * 0.99, `the server counted ${total} of ${sent} sent: ${line}`);
    assert.ok(lost <= total * 0.005, `loss above 0.5%: ${line}`);
  }
  timings.push(`iperf2 3 Mbit/s: ${results.join('; ')}`);
});

test('keepalived with interface eth0 in two pods on two nodes, injected: exactly one MASTER', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfigOf(cluster);
  assert.ok(domains.ka, 'node mode is installed');
  // The baseline (both MASTER) is the first test's; now the same Deployment, injected.
  const injected = await inject('ka', keepalivedObjects());
  assert.equal(injected.domain, domains.ka);
  const file = join(work, 'ka.kmcast.yaml');
  writeFileSync(file, injected.yaml);
  const applied = Date.now();
  await kubectl(['apply', '-f', file]);
  const isMember = (p: Pod): boolean => p.raw.metadata.labels?.['kmcast.io/member'] === 'ka';
  await waitFor('the 2 injected keepalived pods running', async () => await settledPods(VRRP_NS, 'app=ka', 2, isMember), 240_000, { intervalMs: 1000, explain: vrrpEvidence });
  const one = await waitFor(
    'exactly one keepalived MASTER (holding the VIP) and one BACKUP',
    async () => {
      const s = await vrrpState();
      const st = Object.values(s.states).sort();
      return s.holders.length === 1 && st.join(',') === 'BACKUP,MASTER' ? s : undefined;
    },
    60_000,
    { intervalMs: 500, explain: vrrpEvidence },
  );
  timings.push(`keepalived injected to one MASTER ${((Date.now() - applied) / 1000).toFixed(1)} s`);
  assert.equal(new Set(one.pods.map((p) => p.node)).size, 2, 'one pod per node');
  // Stable over 5 advert intervals: the BACKUP keeps hearing the MASTER (TTL 255 intact).
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    await settle(500);
    const s = await vrrpState();
    assert.deepEqual([s.holders, Object.values(s.states).sort()], [one.holders, ['BACKUP', 'MASTER']], `one MASTER must stay: ${JSON.stringify(s.states)}\n${await vrrpEvidence()}`);
  }
});
