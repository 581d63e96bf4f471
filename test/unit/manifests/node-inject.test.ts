import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { injectDocs, injectPod, TEMPLATE_PATHS } from '../../../src/manifests/inject.js';
import type { InjectOptions } from '../../../src/manifests/inject.js';
import { WAIT_NAME, WAIT_UID } from '../../../src/manifests/node-inject.js';
import { checkPodSecurity } from '../../../src/manifests/pss.js';
import { DEFAULT_AGENT_OPTIONS, MEMBER_LABEL, STATUS_ANNOTATION } from '../../../src/manifests/sidecar.js';
import { parseYamlDocs, stringifyDocs } from '../../../src/manifests/yamlio.js';
import { GOLDEN_DIR, INJECT_DIR, injectFixtures } from './fixtures.js';
import { validateK8s } from './k8s-schema.js';
import { kustomizeText } from './kubectl.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SIDECAR: InjectOptions = { ...DEFAULT_AGENT_OPTIONS, createSecret: false, networkPolicy: true, strict: false };
const NODE: InjectOptions = { ...SIDECAR, mode: 'node' };

function run(text: string, opts: InjectOptions): { yaml: string; report: string[]; skipped: string[] } {
  const r = injectDocs(parseYamlDocs(text, 'in.yaml'), opts);
  return { yaml: stringifyDocs(r.docs), report: r.report, skipped: r.skipped };
}
const objects = (yaml: string): Obj[] => parseYamlDocs(yaml, 'out.yaml').map((d) => d.doc.toJS() as Obj);

function templates(obj: Obj): Obj[] {
  if (obj.kind === 'List') return (obj.items as Obj[]).flatMap(templates);
  const path = TEMPLATE_PATHS[obj.kind as string];
  return path ? [path.reduce<Obj>((o, k) => o?.[k], obj)] : [];
}

/** Lists unpacked, as kustomize does. */
const flat = (o: Obj): Obj[] => (o.kind === 'List' ? (o.items as Obj[]).flatMap(flat) : [o]);

/** The restricted violations of a template, without the container indices (the wait container shifts them). */
const violations = (tpl: Obj): string[] =>
  checkPodSecurity(tpl, 'restricted')
    .map((v) => `${v.control}: ${v.path.replace(/\[\d+\]/g, '[]')}`)
    .sort();

const RESTRICTED_APP = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ticker
  namespace: trading
spec:
  selector:
    matchLabels: { app: ticker }
  template:
    metadata:
      labels: { app: ticker }
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: { type: RuntimeDefault }
      containers:
        - name: ticker
          image: example/ticker:2
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: { drop: [ALL] }
`;

const fixtures = injectFixtures();

for (const f of fixtures) {
  test(`inject --mode node ${f}: golden, kubectl kustomize, schema-valid, idempotent, only label + Service + wait container`, () => {
    const input = readFileSync(INJECT_DIR + f, 'utf8');
    const once = run(input, NODE);
    const golden = `${GOLDEN_DIR}node-${f}`;
    if (process.env.KMCAST_UPDATE_GOLDEN === '1' || !existsSync(golden)) {
      mkdirSync(GOLDEN_DIR, { recursive: true });
      writeFileSync(golden, once.yaml);
    }
    assert.equal(once.yaml, readFileSync(golden, 'utf8'));
    assert.equal(run(once.yaml, NODE).yaml, once.yaml, 'injecting twice must equal injecting once');
    const out = objects(once.yaml);
    assert.equal(kustomizeText(once.yaml, f).length, out.flatMap(flat).length, 'kubectl kustomize reads every object');
    for (const o of out) validateK8s(o);
    assert.ok(!out.some((o) => o.kind === 'Secret' || (o.kind === 'NetworkPolicy' && o.metadata?.annotations?.['kmcast.io/generated-for'])), 'no Secret, no policy');
    assert.ok(!once.yaml.includes('NET_ADMIN') && !once.yaml.includes('kmcast-key'), 'no capability, no key anywhere');

    const inTpls = objects(input).flatMap(templates);
    const outTpls = out.flatMap(templates);
    assert.equal(outTpls.length, inTpls.length);
    outTpls.forEach((tpl, i) => {
      const status = tpl.metadata?.annotations?.[STATUS_ANNOTATION];
      if (!status || !String(status).includes('"node"')) return; // skipped (hostNetwork)
      const spec = tpl.spec as Obj;
      const wait = spec.initContainers[0];
      assert.equal(wait.name, WAIT_NAME, 'the wait container comes first');
      assert.deepEqual(wait.args, ['wait']);
      assert.deepEqual(wait.securityContext, {
        runAsNonRoot: true,
        runAsUser: WAIT_UID,
        runAsGroup: WAIT_UID,
        allowPrivilegeEscalation: false,
        privileged: false,
        capabilities: { drop: ['ALL'] },
        readOnlyRootFilesystem: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      assert.deepEqual(
        wait.env.map((e: Obj) => [e.name, e.valueFrom.fieldRef.fieldPath]),
        [
          ['KMCAST_NODE_IP', 'status.hostIP'],
          ['KMCAST_POD_IP', 'status.podIP'],
        ],
      );
      assert.equal(wait.restartPolicy, undefined, 'an ordinary init container: it must finish before the app');
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) assert.ok(!['kmcast', 'kmcast-setup'].includes(c.name as string), 'no sidecar');
      assert.deepEqual(JSON.parse(status as string).initContainers, [WAIT_NAME]);
      // kmcast adds no restricted violation: the pod fails exactly what the user's own spec failed.
      const before = structuredClone(inTpls[i]!);
      const st = before.metadata?.annotations?.[STATUS_ANNOTATION];
      if (st) {
        const s = JSON.parse(st as string) as { initContainers: string[]; containers: string[]; volumes: string[] };
        for (const k of ['initContainers', 'containers', 'volumes'] as const) {
          if (before.spec[k]) before.spec[k] = (before.spec[k] as Obj[]).filter((c) => !s[k].includes(c.name as string));
        }
      }
      assert.deepEqual(
        violations(tpl).filter((v) => !/initContainers\[\]/.test(v) || violations(before).includes(v)),
        violations(before),
      );
      assert.deepEqual(checkPodSecurity({ spec: { containers: [wait] } }, 'restricted'), [], 'the wait container alone passes restricted');
      const app = tpl.metadata.labels[MEMBER_LABEL] as string;
      const svc = out.find((o) => o.kind === 'Service' && o.metadata.name === `${app}-kmcast`)!;
      assert.deepEqual(svc.spec, { clusterIP: 'None', publishNotReadyAddresses: true, selector: { [MEMBER_LABEL]: app } });
    });
  });
}

test('a restricted app stays restricted in node mode; the same app with the sidecar fails baseline (NET_ADMIN) and restricted (uid 0)', () => {
  const node = run(RESTRICTED_APP, NODE);
  const nodeTpl = objects(node.yaml).flatMap(templates)[0]!;
  assert.deepEqual(checkPodSecurity(nodeTpl, 'restricted'), []);
  assert.ok(
    node.report.some((l) => l.includes('the pods pass Pod Security "restricted"')),
    node.report.join('\n'),
  );
  assert.ok(
    node.report.some(
      (l) => l.includes('ticker-kmcast.trading.svc.cluster.local') && l.includes('ConfigMap kmcast-node/kmcast-node') && l.includes('kubectl -n kmcast-node rollout restart daemonset/kmcast-node'),
    ),
  );
  kustomizeText(node.yaml);

  const sidecarTpl = objects(run(RESTRICTED_APP, SIDECAR).yaml).flatMap(templates)[0]!;
  assert.deepEqual([...new Set(checkPodSecurity(sidecarTpl, 'baseline').map((v) => v.control))], ['Capabilities']);
  assert.deepEqual([...new Set(checkPodSecurity(sidecarTpl, 'restricted').map((v) => v.control))].sort(), ['Capabilities', 'Running as Non-root', 'Running as Non-root user']);
  // The app's own shortcomings are reported, not hidden.
  const loose = run(RESTRICTED_APP.replace('allowPrivilegeEscalation: false', 'allowPrivilegeEscalation: true'), NODE);
  assert.ok(
    loose.report.some((l) => /kmcast added nothing that Pod Security "restricted" forbids, but .*allowPrivilegeEscalation must be false/.test(l)),
    loose.report.join('\n'),
  );
});

test('switching modes: sidecar -> node drops the sidecar, key volume, Secret and policy; node -> sidecar drops the wait container', () => {
  for (const f of fixtures) {
    const input = readFileSync(INJECT_DIR + f, 'utf8');
    const sidecar = run(input, { ...SIDECAR, createSecret: true }).yaml;
    assert.deepEqual(objects(run(sidecar, NODE).yaml), objects(run(input, NODE).yaml), `${f}: sidecar then node equals node`);
    const node = run(input, NODE).yaml;
    // The Secret is random; compare without it.
    const noSecret = (y: string): Obj[] => objects(y).filter((o) => o.kind !== 'Secret');
    assert.deepEqual(noSecret(run(node, SIDECAR).yaml), noSecret(run(input, SIDECAR).yaml), `${f}: node then sidecar equals sidecar`);
  }
});

test('node mode refuses what it cannot serve and a foreign kmcast-wait container', () => {
  const host = run(readFileSync(INJECT_DIR + '12-pod-hostnetwork.yaml', 'utf8'), NODE);
  assert.ok(host.skipped.length === 1 && host.report.some((l) => /no veth of its own/.test(l)), host.report.join('\n'));
  const foreign = RESTRICTED_APP.replace('      containers:\n', '      initContainers:\n        - name: kmcast-wait\n          image: mine\n      containers:\n');
  const r = run(foreign, NODE);
  assert.ok(
    r.report.some((l) => /init container kmcast-wait already exists but carries no kmcast.io\/status/.test(l)),
    r.report.join('\n'),
  );
  assert.throws(() => injectDocs(parseYamlDocs(foreign, 'in.yaml'), { ...NODE, strict: true }), /kmcast-wait already exists/);
});

test('injectPod (the webhook path) in node mode gives the template inject gives', () => {
  let compared = 0;
  for (const f of fixtures) {
    for (const obj of objects(readFileSync(INJECT_DIR + f, 'utf8')).flatMap(flat)) {
      for (const tpl of templates(obj)) {
        if (tpl.spec?.hostNetwork) continue;
        const pod = { apiVersion: 'v1', kind: 'Pod', metadata: tpl.metadata ?? {}, spec: tpl.spec };
        let viaPod: Obj;
        try {
          viaPod = injectPod(pod, { ...DEFAULT_AGENT_OPTIONS, mode: 'node' }, obj.kind === 'Pod' ? undefined : (obj.metadata?.name as string)).pod;
        } catch {
          continue; // refused the same way inject refuses (covered above)
        }
        const viaInject = objects(
          run(stringifyDocs(parseYamlDocs(JSON.stringify(pod), 'p').map((d) => d.doc)), { ...NODE, ...(obj.kind === 'Pod' ? {} : { name: obj.metadata.name as string }) }).yaml,
        )[0]!;
        assert.deepEqual(viaPod.spec, viaInject.spec, f);
        assert.deepEqual(viaPod.metadata.labels, viaInject.metadata.labels, f);
        compared++;
      }
    }
  }
  assert.ok(compared >= 12, `compared ${compared}`);
});

test('node mode: the report gives no sidecar advice about sockets bound to eth0 (they hear everything in node mode)', () => {
  const text = readFileSync(INJECT_DIR + '01-deployment-comments.yaml', 'utf8');
  const sidecar = run(text, SIDECAR);
  assert.ok(
    sidecar.report.some((l) => l.includes('bound to eth0')),
    `baseline: the sidecar report has the advice: ${sidecar.report.join('\n')}`,
  );
  const node = run(text, NODE);
  assert.ok(node.report.length > 0);
  assert.deepEqual(
    node.report.filter((l) => l.includes('eth0') || l.includes('vx0')),
    [],
    node.report.join('\n'),
  );
});
