import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { injectDocs, TEMPLATE_PATHS } from '../../../src/manifests/inject.js';
import { MODE_ANNOTATION, WAIT_NAME } from '../../../src/manifests/node-inject.js';
import { checkPodSecurity } from '../../../src/manifests/pss.js';
import { DEFAULT_AGENT_OPTIONS, INJECT_LABEL } from '../../../src/manifests/sidecar.js';
import { handleAdmissionReview } from '../../../src/manifests/webhook.js';
import type { WebhookOptions } from '../../../src/manifests/webhook.js';
import { parseYamlDocs } from '../../../src/manifests/yamlio.js';
import { INJECT_DIR, injectFixtures } from './fixtures.js';
import { validateK8s } from './k8s-schema.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SIDECAR_HOOK: WebhookOptions = { ...DEFAULT_AGENT_OPTIONS, strict: false };
const NODE_HOOK: WebhookOptions = { ...SIDECAR_HOOK, mode: 'node' };

const reviewOf = (pod: unknown): Obj => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'default', object: pod },
});

function templatesOf(obj: Obj): Obj[] {
  if (obj.kind === 'List') return (obj.items as Obj[]).flatMap(templatesOf);
  const path = TEMPLATE_PATHS[obj.kind as string];
  return path ? [path.reduce<Obj>((o, k) => o?.[k], obj)] : [];
}

const podOf = (tpl: Obj, annotations: Record<string, string> = {}): Obj => {
  const pod: Obj = { apiVersion: 'v1', kind: 'Pod', metadata: structuredClone(tpl.metadata ?? {}), spec: structuredClone(tpl.spec) };
  pod.metadata.labels = { ...pod.metadata.labels, [INJECT_LABEL]: 'enabled' };
  if (Object.keys(annotations).length > 0) pod.metadata.annotations = { ...pod.metadata.annotations, ...annotations };
  return pod;
};

function patched(pod: Obj, o: WebhookOptions): { pod?: Obj; response: Obj } {
  const reply = handleAdmissionReview(reviewOf(pod), o);
  assert.equal(reply.status, 200);
  const response = reply.body.response as Obj;
  if (!response.patch) return { response };
  const ops = JSON.parse(Buffer.from(response.patch as string, 'base64').toString()) as Operation[];
  return { pod: jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument, response };
}

test('webhook --mode node, and the kmcast.io/mode: node annotation on a sidecar webhook, patch every fixture pod as inject --mode node does', () => {
  let compared = 0;
  for (const f of injectFixtures()) {
    for (const src of parseYamlDocs(readFileSync(INJECT_DIR + f, 'utf8'), f)) {
      for (const tpl of templatesOf(src.doc.toJS() as Obj)) {
        for (const [hook, annotations] of [
          [NODE_HOOK, {}],
          [SIDECAR_HOOK, { [MODE_ANNOTATION]: 'node' }],
        ] as const) {
          const pod = podOf(tpl, annotations);
          const injected = injectDocs(parseYamlDocs(JSON.stringify(pod), f), { ...DEFAULT_AGENT_OPTIONS, mode: 'node', createSecret: false, networkPolicy: true, strict: false });
          const { pod: out, response } = patched(pod, hook);
          assert.equal(response.allowed, true);
          if (injected.skipped.length > 0) {
            assert.equal(out, undefined, `${f}: skipped by inject, not patched`);
            continue;
          }
          assert.deepEqual(out, injected.docs[0]!.toJS(), `${f}: webhook and inject --mode node disagree`);
          assert.equal(out!.spec.initContainers[0].name, WAIT_NAME);
          assert.ok(!JSON.stringify(out).includes('NET_ADMIN'));
          assert.ok(validateK8s(out));
          compared++;
        }
      }
    }
  }
  assert.ok(compared >= 20, `compared ${compared}`);
});

test('a restricted pod stays restricted through the node-mode webhook; kmcast.io/mode: sidecar overrides a node webhook', () => {
  const tpl = {
    metadata: { labels: { app: 'ticker' } },
    spec: {
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{ name: 'ticker', image: 'x', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } }],
    },
  };
  const node = patched(podOf(tpl), NODE_HOOK).pod!;
  assert.deepEqual(checkPodSecurity(node, 'restricted'), []);
  const sidecar = patched(podOf(tpl, { [MODE_ANNOTATION]: 'sidecar' }), NODE_HOOK).pod!;
  assert.equal(sidecar.spec.initContainers[0].name, 'kmcast');
  assert.ok(checkPodSecurity(sidecar, 'baseline').length > 0, 'the sidecar adds NET_ADMIN');
  // Idempotent: the patched pod coming back (a re-admission) gets no patch.
  assert.equal(patched(node, NODE_HOOK).response.patch, undefined);
});

test('an unknown kmcast.io/mode is a warning (or a denial with --strict), never a guess', () => {
  const pod = podOf({ metadata: { labels: { app: 'a' } }, spec: { containers: [{ name: 'a', image: 'b' }] } }, { [MODE_ANNOTATION]: 'nodes' });
  const soft = patched(pod, NODE_HOOK).response;
  assert.equal(soft.allowed, true);
  assert.equal(soft.patch, undefined);
  assert.match(soft.warnings[0] as string, /annotation kmcast\.io\/mode: "nodes" is neither "node" nor "sidecar"/);
  const hard = patched(pod, { ...NODE_HOOK, strict: true }).response;
  assert.equal(hard.allowed, false);
  assert.equal(hard.status.code, 422);
});
