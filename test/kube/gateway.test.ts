/**
 * The kmcast gateway on the lab's real Kubernetes cluster, as root (`npm run test:kube`), done the
 * way docs/gateway.md tells a user: deploy/gateway (deploy/node plus the gateway DaemonSet)
 * applied with kubectl, the gateway's settings in ConfigMap kmcast-gateway, the app's domain in
 * ConfigMap kmcast-node, and the gateway node labelled last. One 2-node cluster (a calico-style
 * node with CNI ptp, a bridge-style node with CNI bridge) and the lab's outside LAN (`lab up --lan
 * 1`: a switch with IGMP snooping and a querier, a host h1 that is not a pod) on node 1.
 *
 * In order:
 * 1. baseline: node mode installed, no node labelled: the injected app's pods run on both nodes,
 *    and a feed from the LAN host reaches none of them;
 * 2. node 1 labelled kmcast.io/gateway=true: the kmcast-node agent leaves it, the gateway takes
 *    over its member pods and joins the group on the LAN interface; the LAN host's feed reaches
 *    every pod on both nodes exactly once, with the host's own address as the source.
 */
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_AGENT_HTTP_PORT, netnsFetch, waitFor } from '../../src/lab/process.js';
import { APPS_IMAGE } from '../../src/lab/kube/plan.js';
import { needRoot, testLabId } from '../netns/harness.js';
import { kubeLabDown, kubeLabUp, nodeName, runner } from './harness.js';
import type { KubeLab } from './harness.js';
import { DEPLOY, Kube, kmcast, list, recvPy, roundLines } from './kube.js';
import type { Pod } from './kube.js';

const id = testLabId('kg');
let cluster: KubeLab | undefined;
const k = new Kube(() => cluster);
const work = mkdtempSync(join(tmpdir(), 'kmc-kube-gw-'));

const NS = 'kmc-feed';
const GROUP = '239.10.3.1';
const PORT = 7301;
const UPORT = 7302;
const LAN_IF = 'kmclan';
const LAN_HOST = 'h1';
const LAN_HOST_IP = '192.168.250.11';
const timings: string[] = [];
const state: { domain?: string; members?: Pod[] } = {};

// The feed, from the LAN host: "<tag>-<i>" to the group out of its eth0, TTL 8.
const FEED_PY = `
import socket, struct, sys, time
tag, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack('4s4si', socket.inet_aton('0.0.0.0'), socket.inet_aton('0.0.0.0'), socket.if_nametoindex('eth0')))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
for i in range(count):
    s.sendto(('%s-%d' % (tag, i)).encode(), ('${GROUP}', ${PORT})); time.sleep(0.02)
`;

/** The app: unprivileged, in a namespace enforcing restricted, two pods per node. */
function feedApp(): Array<Record<string, unknown>> {
  const labels = { app: 'feed' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'feed', namespace: NS },
      spec: {
        replicas: 4,
        selector: { matchLabels: labels },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '100%', maxUnavailable: 0 } },
        template: {
          metadata: { labels },
          spec: {
            terminationGracePeriodSeconds: 1,
            securityContext: { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: { type: 'RuntimeDefault' } },
            topologySpreadConstraints: [
              { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: labels }, matchLabelKeys: ['pod-template-hash'] },
            ],
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
    },
  ];
}

async function feed(tag: string, count: number): Promise<void> {
  const r = await runner.run(['ip', 'netns', 'exec', `kmc${id}-${LAN_HOST}`, 'python3', '-c', FEED_PY, tag, String(count)], { allowFail: true, timeoutMs: 30_000 });
  assert.equal(r.code, 0, `the feed from ${LAN_HOST}: ${r.stderr}`);
}

interface GatewayStatus {
  ready: boolean;
  domains: Array<{ service: string; localMembers: Array<{ podIp: string; programmed: boolean; groups: string[] }>; peers: Array<{ ip: string; state: string; groups: string[] }> }>;
  gateway?: { active: boolean; interface: string; joined: string[]; table: { installed: boolean }; traffic: Array<{ group: string; direction: string; datagrams: number }> };
}

async function agentStatus(node: number): Promise<GatewayStatus> {
  const r = await netnsFetch(nodeName(id, node), '/status', NODE_AGENT_HTTP_PORT);
  if (r.status !== 200) throw new Error(`node ${node} /status: HTTP ${r.status}: ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as GatewayStatus;
}

async function evidence(): Promise<string> {
  const out = [await k.show(['-n', 'kmcast-node', 'get', 'pods', '-o', 'wide']), await k.show(['-n', NS, 'get', 'pods', '-o', 'wide'])];
  for (const i of [1, 2])
    out.push(
      `node ${i} /status: ${await agentStatus(i).then(
        (s) => JSON.stringify(s).slice(0, 1500),
        (e: unknown) => String(e),
      )}`,
    );
  out.push(await k.show(['-n', 'kmcast-node', 'logs', '--tail=8', '-l', 'app.kubernetes.io/component=node', '--prefix']));
  out.push(await k.events('kmcast-node'));
  return out.join('\n');
}

before(async () => {
  cluster = await kubeLabUp(id, ['calico', 'bridge'], { nodes: [1], hosts: 1 });
});

after(async () => {
  rmSync(work, { recursive: true, force: true });
  await kubeLabDown(cluster);
  if (timings.length) process.stderr.write(`# gateway on the cluster: ${timings.join('; ')}\n`);
});

test('baseline: node mode from deploy/gateway with no gateway node; the app runs on both nodes and the LAN feed reaches no pod', async (t: TestContext) => {
  if (!needRoot(t)) return;
  t.diagnostic(`cluster up in ${cluster!.upSeconds.toFixed(1)} s`);
  // As docs/gateway.md says: deploy/gateway instead of deploy/node, the key Secret as for deploy/node.
  await k.kubectl(['apply', '-f', join(DEPLOY, 'node', 'namespace.yaml')]);
  const key = (await runner.run(['openssl', 'rand', '-hex', '32'])).stdout.trim();
  await k.kubectl(['-n', 'kmcast-node', 'create', 'secret', 'generic', 'kmcast-node-key', `--from-literal=key=${key}`]);
  const applied = await k.kubectlFull(['apply', '-k', join(DEPLOY, 'gateway')]);
  assert.doesNotMatch(applied.stderr, /warning/i, 'kubectl apply -k deploy/gateway warns');
  assert.match(applied.stdout, /daemonset\.apps\/kmcast-gateway created/);

  const file = join(work, 'feed.json');
  writeFileSync(file, list(feedApp()));
  const injected = await kmcast(['inject', '--mode', 'node', '-f', file]);
  const domain = /add the domain (\S+) to the kmcast-node DaemonSet/.exec(injected.stderr)?.[1];
  assert.equal(domain, `feed-kmcast.${NS}.svc.cluster.local`, injected.stderr);
  state.domain = domain;
  // The domain into kmcast-node's ConfigMap, the gateway's settings into kmcast-gateway's (what
  // `kubectl edit configmap` does), the agents restarted to read them.
  await k.kubectl(['-n', 'kmcast-node', 'patch', 'configmap', 'kmcast-node', '--type=merge', '-p', JSON.stringify({ data: { services: domain } })]);
  await k.kubectl(['-n', 'kmcast-node', 'patch', 'configmap', 'kmcast-gateway', '--type=merge', '-p', JSON.stringify({ data: { interface: LAN_IF, groups: '239.10.3.0/24=in' } })]);
  await k.kubectl(['-n', 'kmcast-node', 'rollout', 'restart', 'daemonset/kmcast-node']);
  await k.daemonSetRolledOut('kmcast-node', 'kmcast-node', 2, 180_000, evidence);
  const appFile = join(work, 'feed.kmcast.yaml');
  writeFileSync(appFile, injected.stdout);
  await k.kubectl(['apply', '-f', appFile]);
  const members = await k.readyApps(NS, 'app=feed', 4, 240_000, (p) => p.raw.metadata.labels?.['kmcast.io/member'] === 'feed');
  assert.deepEqual(
    members.map((p) => p.node),
    [nodeName(id, 1), nodeName(id, 1), nodeName(id, 2), nodeName(id, 2)],
  );
  state.members = members;
  // No gateway: nothing joins the group on the LAN and nothing carries it. The fence is the next
  // test's feed, which reaches these pods later on the path a late datagram of this one would take.
  assert.equal((await k.kubectl(['-n', 'kmcast-node', 'get', 'pods', '-l', 'kmcast.io/agent=gateway', '-o', 'name'])).trim(), '');
  await feed('base', 5);
});

test('node 1 labelled kmcast.io/gateway=true: the LAN feed reaches every pod on both nodes exactly once, from the LAN host', async (t: TestContext) => {
  if (!needRoot(t)) return;
  const members = state.members;
  assert.ok(members && state.domain, 'the baseline ran');
  const labelled = Date.now();
  await k.kubectl(['label', 'node', nodeName(id, 1), 'kmcast.io/gateway=true']);
  await k.daemonSetRolledOut('kmcast-node', 'kmcast-gateway', 1, 120_000, evidence);
  await k.daemonSetRolledOut('kmcast-node', 'kmcast-node', 1, 120_000, evidence);
  const agents = await k.pods('kmcast-node', 'app.kubernetes.io/component=node');
  assert.deepEqual(
    agents.filter((p) => !p.deleting).map((p) => `${p.node} ${p.raw.metadata.labels?.['kmcast.io/agent'] ?? 'node'}`),
    [`${nodeName(id, 1)} gateway`, `${nodeName(id, 2)} node`],
    'one agent per node: the gateway on node 1',
  );
  // The gateway adopted node 1's members and joined the group on the LAN; node 2's members' join
  // reached it.
  await waitFor(
    `the gateway active on ${LAN_IF}, joined to ${GROUP}, its members programmed, node 2's join heard`,
    async () => {
      const s = await agentStatus(1);
      const g = s.gateway;
      const d = s.domains.find((x) => x.service === state.domain);
      if (!s.ready || !g?.active || !g.table.installed || g.interface !== LAN_IF || !g.joined.includes(GROUP) || !d) return false;
      if (d.localMembers.length !== 2 || d.localMembers.some((m) => !m.programmed || !m.groups.includes(GROUP))) return false;
      return d.peers.some((p) => p.state === 'alive' && p.groups.includes(GROUP));
    },
    90_000,
    { intervalMs: 1000, explain: evidence },
  );
  timings.push(`node labelled to the gateway carrying ${((Date.now() - labelled) / 1000).toFixed(1)} s`);

  const COUNT = 20;
  await feed('lan1', COUNT);
  const got = async (p: Pod, tag: string): Promise<string[]> => roundLines(await k.logs(NS, p.name, 'app'), tag);
  await waitFor(
    `the LAN feed lan1 at all ${members.length} pods`,
    async () => {
      for (const p of members) if ((await got(p, 'lan1')).length < COUNT) return false;
      return true;
    },
    30_000,
    { intervalMs: 500, explain: async () => `${(await Promise.all(members.map(async (p) => `${p.name}: ${(await got(p, 'lan1')).length}`))).join('\n')}\n${await evidence()}` },
  );
  // A second feed as the fence for late duplicates of the first.
  await feed('lan2', 1);
  await waitFor(
    'the fence feed lan2 at every pod',
    async () => {
      for (const p of members) if ((await got(p, 'lan2')).length < 1) return false;
      return true;
    },
    30_000,
    { intervalMs: 500, explain: evidence },
  );
  for (const p of members) {
    const lines = await k.logs(NS, p.name, 'app');
    assert.deepEqual(roundLines(lines, 'base'), [], `${p.name} (${p.node}) heard the LAN without a gateway`);
    const want = Array.from({ length: COUNT }, (_, i) => `${LAN_HOST_IP} lan1-${i}`).sort();
    assert.deepEqual(roundLines(lines, 'lan1').sort(), want, `${p.name} (${p.node}): every LAN datagram exactly once, from the LAN host's address`);
  }
  const traffic = (await agentStatus(1)).gateway?.traffic.find((x) => x.group === GROUP && x.direction === 'in');
  assert.ok(traffic && traffic.datagrams >= COUNT + 1, `the gateway counted the feed: ${JSON.stringify(traffic)}`);
});
