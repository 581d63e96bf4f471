/**
 * Many generated workloads (a seeded generator, so a failure is reproducible): every one is
 * injected, the output validates against the Kubernetes schemas, injecting again changes nothing,
 * and the YAML path (inject) and the JSON path (webhook) agree on the pod template.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { injectDocs, injectPod, TEMPLATE_PATHS } from '../../../src/manifests/inject.js';
import { DEFAULT_AGENT_OPTIONS } from '../../../src/manifests/sidecar.js';
import { parseYamlDocs, stringifyDocs } from '../../../src/manifests/yamlio.js';
import { validateK8s } from './k8s-schema.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const KINDS: [string, string][] = [
  ['v1', 'Pod'],
  ['apps/v1', 'Deployment'],
  ['apps/v1', 'StatefulSet'],
  ['apps/v1', 'DaemonSet'],
  ['apps/v1', 'ReplicaSet'],
  ['batch/v1', 'Job'],
  ['batch/v1', 'CronJob'],
  ['v1', 'ReplicationController'],
];

function workload(r: () => number, i: number): Obj {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const [apiVersion, kind] = pick(KINDS);
  const name = `w${i}-${pick(['feed', 'cache', 'game', 'radio'])}`;
  const labels: Obj = r() < 0.5 ? { app: name } : { 'app.kubernetes.io/name': name, tier: pick(['a', 'b']) };
  const container = (n: number): Obj => ({
    name: `c${n}`,
    image: `example/img${n}:1`,
    ...(r() < 0.5 ? { env: [{ name: 'MCAST_GROUP', value: `239.1.${n}.1:500${n}` }] } : {}),
    ...(r() < 0.5 ? { ports: [{ containerPort: 5000 + n, protocol: pick(['UDP', 'TCP']) }] } : {}),
  });
  const spec: Obj = { containers: Array.from({ length: 1 + Math.floor(r() * 3) }, (_, n) => container(n)) };
  const inits = Math.floor(r() * 3);
  if (inits > 0) spec.initContainers = Array.from({ length: inits }, (_, n) => ({ ...container(10 + n), ...(r() < 0.3 ? { restartPolicy: 'Always' } : {}) }));
  if (r() < 0.5) spec.volumes = [{ name: 'data', emptyDir: {} }];
  if (r() < 0.3) spec.securityContext = { runAsNonRoot: true, runAsUser: 1000 };
  if (r() < 0.1) spec.hostNetwork = true;
  if (kind === 'Job' || kind === 'CronJob') spec.restartPolicy = pick(['Never', 'OnFailure']);
  const template: Obj = { metadata: { labels, ...(r() < 0.3 ? { annotations: { note: 'x' } } : {}) }, spec };
  const metadata: Obj = { name, ...(r() < 0.5 ? { namespace: pick(['ns1', 'ns2']) } : {}) };
  switch (kind) {
    case 'Pod':
      return { apiVersion, kind, metadata: { ...metadata, labels }, spec };
    case 'CronJob':
      return { apiVersion, kind, metadata, spec: { schedule: '* * * * *', jobTemplate: { spec: { template } } } };
    case 'Job':
      return { apiVersion, kind, metadata, spec: { template } };
    case 'ReplicationController':
      return { apiVersion, kind, metadata, spec: { selector: labels, template } };
    default:
      return { apiVersion, kind, metadata, spec: { selector: { matchLabels: labels }, template, ...(kind === 'StatefulSet' ? { serviceName: name } : {}) } };
  }
}

test('200 generated workloads: injected, schema-valid, idempotent, YAML and JSON paths agree', () => {
  const r = rng(4242);
  let injected = 0;
  let skipped = 0;
  for (let i = 0; i < 200; i++) {
    const w = workload(r, i);
    assert.ok(validateK8s(w), 'the generated input itself is valid');
    const legacy = r() < 0.3;
    const opts = { ...DEFAULT_AGENT_OPTIONS, legacy, createSecret: r() < 0.5, networkPolicy: true, strict: false };
    const res = injectDocs(parseYamlDocs(stringify(w), `w${i}.yaml`), opts);
    const yaml = stringifyDocs(res.docs);
    const out = parseYamlDocs(yaml, 'out').map((d) => d.doc.toJS() as Obj);
    for (const o of out) assert.ok(validateK8s(o), `${o.kind as string} validates`);
    if (res.skipped.length > 0) {
      skipped++;
      assert.ok(
        w.spec.hostNetwork === true ||
          w.spec.template?.spec.hostNetwork === true ||
          w.spec.jobTemplate?.spec.template.spec.hostNetwork === true ||
          (legacy && ['Job', 'CronJob'].includes(w.kind as string)),
      );
      assert.deepEqual(out, [w]);
      continue;
    }
    injected++;
    assert.equal(stringifyDocs(injectDocs(parseYamlDocs(yaml, 'again'), opts).docs), yaml, `w${i}: twice equals once`);
    const path = TEMPLATE_PATHS[w.kind as string]!;
    const tplIn = path.reduce<Obj>((o, k) => o[k], w);
    const tplOut = path.reduce<Obj>((o, k) => o[k], out[0]!);
    const meta = w.kind === 'Pod' ? w.metadata : { ...tplIn.metadata, name: w.metadata.name };
    const { pod } = injectPod({ metadata: meta, spec: tplIn.spec }, opts);
    assert.deepEqual(pod.spec, tplOut.spec, `w${i}: webhook path agrees`);
    assert.equal(out.filter((o) => o.kind === 'Secret').length, opts.createSecret ? 1 : 0);
  }
  assert.ok(injected >= 120 && skipped >= 5, `injected ${injected}, skipped ${skipped}`);
});
