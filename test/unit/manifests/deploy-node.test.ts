import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { NODE_CONTROL_PORT, NODE_HTTP_PORT, NODE_VXLAN_PORT } from '../../../src/node/api.js';
import { NODE_CONFIGMAP, NODE_DAEMONSET, NODE_NAMESPACE, NODE_SERVICES_KEY } from '../../../src/manifests/node-inject.js';
import { checkPodSecurity } from '../../../src/manifests/pss.js';
import { ROOT } from './fixtures.js';
import { validateK8s } from './k8s-schema.js';
import { kustomizeDir, kustomizeText } from './kubectl.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const built = kustomizeDir(`${ROOT}deploy/node`, 'deploy/node') as Obj[];
const byKind = (kind: string): Obj[] => built.filter((o) => o.kind === kind);
const ds = byKind('DaemonSet')[0]!;
const pod = ds.spec.template;
const c = pod.spec.containers[0];

/** The node agent's flags (its contract): nothing else may appear in the DaemonSet's args. */
const NODE_FLAGS = ['--service', '--peers-service', '--key-file', '--interface', '--node-ip', '--http', '--vxlan-port', '--control-port', '--log-level'];

test('deploy/node: kubectl kustomize builds it; every object validates against the Kubernetes schemas', () => {
  assert.deepEqual(built.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
    'ConfigMap/kmcast-node',
    'DaemonSet/kmcast-node',
    'Namespace/kmcast-node',
    'Service/kmcast-node',
    'ServiceAccount/kmcast-node',
  ]);
  for (const o of built) {
    assert.ok(validateK8s(o), `${o.kind} has a schema`);
    if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, NODE_NAMESPACE);
  }
  assert.equal(ds.metadata.name, NODE_DAEMONSET);
  // Only the agent lives in its namespace, and the agent needs more than baseline allows.
  assert.equal(byKind('Namespace')[0]!.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
  assert.ok(!built.some((o) => /Role|Binding/.test(o.kind as string)), 'no RBAC');
  assert.equal(byKind('ServiceAccount')[0]!.automountServiceAccountToken, false);
  assert.equal(pod.spec.automountServiceAccountToken, false);
});

test('the DaemonSet: hostNetwork, ClusterFirstWithHostNet, every node, system-node-critical, probes on the agent port', () => {
  assert.equal(pod.spec.hostNetwork, true);
  assert.equal(pod.spec.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.equal(pod.spec.hostPID, undefined, 'the netns handles make hostPID unnecessary');
  assert.equal(pod.spec.priorityClassName, 'system-node-critical');
  assert.deepEqual(pod.spec.tolerations, [{ operator: 'Exists' }]);
  assert.equal(pod.spec.nodeSelector['kubernetes.io/os'], 'linux');
  assert.deepEqual(
    c.ports.map((p: Obj) => [p.containerPort, p.protocol]),
    [
      [NODE_HTTP_PORT, 'TCP'],
      [NODE_VXLAN_PORT, 'UDP'],
      [NODE_CONTROL_PORT, 'UDP'],
    ],
  );
  const port = (name: string): number => c.ports.find((p: Obj) => p.name === name).containerPort as number;
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(port(c.readinessProbe.httpGet.port as string), NODE_HTTP_PORT);
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(port(c.livenessProbe.httpGet.port as string), NODE_HTTP_PORT);
  assert.equal(byKind('PodDisruptionBudget').length, 0);
});

test('the DaemonSet: NET_ADMIN, SYS_ADMIN and NET_BROADCAST only, not privileged; the netns handles with HostToContainer; no xtables lock', () => {
  const sc = c.securityContext;
  assert.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'SYS_ADMIN', 'NET_BROADCAST'] });
  assert.equal(sc.privileged, false);
  assert.equal(sc.allowPrivilegeEscalation, false);
  // The agent enters pods with nsenter (setns), never ip -n (which remounts /sys): the runtime's
  // default AppArmor profile holds.
  assert.equal(sc.appArmorProfile, undefined);
  assert.deepEqual(
    checkPodSecurity(pod, 'baseline').filter((v) => v.control === 'AppArmor'),
    [],
  );
  const caps = checkPodSecurity(pod, 'baseline')
    .filter((v) => v.control === 'Capabilities')
    .map((v) => v.message);
  assert.deepEqual(caps, ['adds NET_ADMIN, not in the baseline list', 'adds SYS_ADMIN, not in the baseline list', 'adds NET_BROADCAST, not in the baseline list']);
  const hostPaths = (pod.spec.volumes as Obj[]).filter((v) => v.hostPath).map((v) => v.hostPath.path);
  assert.deepEqual(hostPaths, ['/run/netns'], 'the netns handles and nothing else of the host (no /run/xtables.lock: nftables)');
  const netns = (c.volumeMounts as Obj[]).find((m) => m.name === (pod.spec.volumes as Obj[]).find((v) => v.hostPath)!.name)!;
  assert.equal(netns.mountPropagation, 'HostToContainer');
  assert.match(netns.mountPath as string, /^(\/var)?\/run\/netns$/);
});

test('the DaemonSet passes only node agent flags; domains come from the ConfigMap, peers from its own headless Service', () => {
  assert.equal(c.args[0], 'node');
  for (const a of (c.args as string[]).slice(1)) assert.ok(NODE_FLAGS.includes(a.split('=')[0]!), a);
  const flag = (name: string): string | undefined => (c.args as string[]).find((a) => a.startsWith(`${name}=`))?.split('=')[1];
  assert.equal(flag('--http'), `0.0.0.0:${NODE_HTTP_PORT}`);
  assert.equal(flag('--vxlan-port'), String(NODE_VXLAN_PORT));
  assert.equal(flag('--control-port'), String(NODE_CONTROL_PORT));
  const svc = byKind('Service')[0]!;
  assert.equal(flag('--peers-service'), `${svc.metadata.name as string}.${svc.metadata.namespace as string}.svc.cluster.local`);
  assert.equal(svc.spec.clusterIP, 'None');
  assert.equal(svc.spec.publishNotReadyAddresses, true);
  for (const [k, v] of Object.entries(svc.spec.selector as Record<string, string>)) assert.equal(pod.metadata.labels[k], v, 'the Service selects the agents');
  const env = (c.env as Obj[]).find((e) => e.name === 'KMCAST_SERVICE')!;
  assert.deepEqual(env.valueFrom.configMapKeyRef, { name: NODE_CONFIGMAP, key: NODE_SERVICES_KEY });
  const cm = byKind('ConfigMap')[0]!;
  assert.equal(cm.metadata.name, NODE_CONFIGMAP, 'the name inject reports, without a hash suffix');
  assert.equal(cm.data[NODE_SERVICES_KEY], '');
  // --node-ip comes from the downward API through kubelet expansion.
  assert.equal(flag('--node-ip'), '$(NODE_IP)');
  assert.equal((c.env as Obj[]).find((e) => e.name === 'NODE_IP')!.valueFrom.fieldRef.fieldPath, 'status.hostIP');
  const keyVol = (pod.spec.volumes as Obj[]).find((v) => v.secret)!;
  const keyMount = (c.volumeMounts as Obj[]).find((m) => m.name === keyVol.name)!;
  assert.equal(flag('--key-file'), `${keyMount.mountPath as string}/key`);
});

test('every kustomization and example under deploy/ builds with kubectl kustomize', () => {
  for (const dir of ['kustomize/base', 'kustomize/cert-manager', 'node', 'gateway']) assert.ok(kustomizeDir(`${ROOT}deploy/${dir}`, dir).length >= 1, dir);
  for (const f of readdirSync(`${ROOT}deploy/examples`).filter((n) => n.endsWith('.yaml'))) {
    const text = readFileSync(`${ROOT}deploy/examples/${f}`, 'utf8');
    assert.ok(kustomizeText(text, f).length >= 1, f);
  }
});
