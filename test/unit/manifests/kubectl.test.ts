/**
 * Every document kmcast writes must parse with Kubernetes' own YAML parser (`kubectl kustomize`,
 * go-yaml), and read there exactly as it reads here: the inject goldens, every generate mode, and
 * the pods the webhook's patches produce. One kustomize run covers many documents.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { generateGateway } from '../../../src/manifests/gateway-generate.js';
import { generate, MODES } from '../../../src/manifests/generate.js';
import type { GenerateOptions } from '../../../src/manifests/generate.js';
import { parseGroupSpec } from '../../../src/manifests/groups.js';
import { TEMPLATE_PATHS } from '../../../src/manifests/inject.js';
import { DEFAULT_AGENT_OPTIONS, INJECT_LABEL } from '../../../src/manifests/sidecar.js';
import { handleAdmissionReview } from '../../../src/manifests/webhook.js';
import { parseYamlDocs, stringifyDocs, newDoc } from '../../../src/manifests/yamlio.js';
import { GOLDEN_DIR, INJECT_DIR, injectFixtures } from './fixtures.js';
import { kubectlParse, requireKubectl } from './kubectl.js';
import type { KubectlInput } from './kubectl.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

test('the kubectl helper rejects a flow map with a plain ":9470" (go-yaml: did not find expected node content)', (t) => {
  if (!requireKubectl(t)) return;
  const bad = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: { name: KMCAST_HTTP, value: :9470 }\n';
  assert.throws(() => kubectlParse([{ label: 'bad.yaml', yaml: bad }]), /bad\.yaml: kubectl kustomize: .*did not find expected node content/s);
  const good = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: { name: KMCAST_HTTP, value: ":9470" }\n';
  const [cm] = kubectlParse([{ label: 'good.yaml', yaml: good }]);
  assert.equal((cm as Obj).data.value, ':9470');
  // A value both parsers accept but read differently is caught too: go-yaml reads 0400 as octal (256).
  assert.throws(() => kubectlParse([{ label: 'octal.yaml', yaml: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {x: 0400}\n' }]), /octal\.yaml: .*reads differently/);
});

test('every inject golden output parses with kubectl kustomize and reads the same', (t) => {
  if (!requireKubectl(t)) return;
  const inputs: KubectlInput[] = readdirSync(GOLDEN_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ label: `golden ${f}`, yaml: readFileSync(GOLDEN_DIR + f, 'utf8') }));
  assert.ok(inputs.length >= 2 * injectFixtures().length);
  const objs = kubectlParse(inputs);
  assert.ok(objs.length > inputs.length);
});

const base: GenerateOptions = {
  name: 'ticker',
  image: 'example/ticker:2',
  groups: [parseGroupSpec('239.1.1.1:5000')],
  mode: 'overlay',
  namespace: 'trading',
  replicas: 3,
  multusType: 'macvlan',
  master: 'eth1',
  subnet: '10.201.0.0/24',
  createSecret: true,
  agent: DEFAULT_AGENT_OPTIONS,
};

test('every generate mode parses with kubectl kustomize and reads the same', (t) => {
  if (!requireKubectl(t)) return;
  const variants: Partial<GenerateOptions>[] = [
    {},
    { createSecret: false, replicas: 1, groups: ['239.1.1.1:5000', '239.1.1.2:5001'].map((g) => parseGroupSpec(g)) },
    { multusType: 'ipvlan', master: 'ens4', agent: { ...DEFAULT_AGENT_OPTIONS, legacy: true, image: 'example/kmcast:dev' } },
  ];
  // --create-secret and --legacy are for overlay mode only (node-mode pods hold no key, no agent).
  const inputs = MODES.flatMap((mode) =>
    variants.map((v, i) => {
      const o = { ...base, ...v, mode };
      const fit = mode === 'node' ? { ...o, createSecret: false, agent: { ...o.agent, legacy: false } } : o;
      return { label: `generate --mode ${mode} (variant ${i})`, yaml: generate(fit).yaml };
    }),
  );
  const gateway = [
    { interface: 'eth1', groups: ['239.10.0.0/16=in'], snat: 'on' as const, minTtl: 1, rate: 10000, image: DEFAULT_AGENT_OPTIONS.image },
    { interface: 'ens4', groups: ['224.0.0.251=both,239.255.255.250=both'], service: 'ha-kmcast.home.svc.cluster.local', snat: 'off' as const, minTtl: 255, rate: 0, image: 'example/kmcast:dev' },
  ].map((o, i) => ({ label: `generate --mode gateway (variant ${i})`, yaml: generateGateway(o).yaml }));
  const objs = kubectlParse([...inputs, ...gateway]) as Obj[];
  assert.ok(objs.some((o) => o.kind === 'Deployment'));
  // kubectl reads the gateway's settings as strings (a plain off would be a boolean to YAML 1.1 readers).
  const settings = objs.filter((o) => o.kind === 'ConfigMap' && o.metadata.name === 'kmcast-gateway');
  assert.equal(settings.length, 2);
  assert.deepEqual(
    settings.map((o) => o.data.snat),
    ['on', 'off'],
  );
});

function templatesOf(obj: Obj): Obj[] {
  if (obj.kind === 'List') return (obj.items as Obj[]).flatMap(templatesOf);
  const path = TEMPLATE_PATHS[obj.kind as string];
  return path ? [path.reduce<Obj>((o, k) => o?.[k], obj)] : [];
}

test('every pod the webhook patches parses with kubectl kustomize, as YAML and as JSON', (t) => {
  if (!requireKubectl(t)) return;
  const inputs: KubectlInput[] = [];
  let n = 0;
  for (const f of injectFixtures()) {
    for (const src of parseYamlDocs(readFileSync(INJECT_DIR + f, 'utf8'), f)) {
      for (const tpl of templatesOf(src.doc.toJS() as Obj)) {
        n++;
        const meta = structuredClone(tpl.metadata ?? {});
        // kustomize needs a name; the API server gives pods made from generateName one, too.
        meta.name ??= `pod-${n}`;
        meta.labels = { ...meta.labels, [INJECT_LABEL]: 'enabled' };
        const pod = { apiVersion: 'v1', kind: 'Pod', metadata: meta, spec: structuredClone(tpl.spec) };
        const reply = handleAdmissionReview(
          { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: `u${n}`, kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', object: pod } },
          { ...DEFAULT_AGENT_OPTIONS, strict: false },
        );
        const patch = (reply.body.response as Obj).patch as string | undefined;
        if (!patch) continue;
        const patched = jsonpatch.applyPatch(structuredClone(pod), JSON.parse(Buffer.from(patch, 'base64').toString()) as Operation[], true, false).newDocument;
        inputs.push({ label: `webhook ${f} pod ${n} (YAML)`, yaml: stringifyDocs([newDoc(patched)]) });
        inputs.push({ label: `webhook ${f} pod ${n} (JSON)`, yaml: JSON.stringify(patched) });
      }
    }
  }
  assert.ok(inputs.length >= 20, `${inputs.length} patched pods`);
  kubectlParse(inputs);
});
