import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { silentLogger } from '../../../src/log.js';
import { injectDocs, TEMPLATE_PATHS } from '../../../src/manifests/inject.js';
import { DEFAULT_AGENT_OPTIONS, INJECT_LABEL } from '../../../src/manifests/sidecar.js';
import { startWebhookServer } from '../../../src/manifests/webhook-server.js';
import type { WebhookServer } from '../../../src/manifests/webhook-server.js';
import { parseYamlDocs } from '../../../src/manifests/yamlio.js';
import { INJECT_DIR, injectFixtures } from './fixtures.js';
import { validateK8s } from './k8s-schema.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let dir: string;
let cert: Buffer;
let srv: WebhookServer;
const OPTS = { ...DEFAULT_AGENT_OPTIONS, strict: false };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kmc-webhook-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=kmcast-webhook',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'tls.key'),
      '-out',
      join(dir, 'tls.crt'),
    ],
    { stdio: 'ignore' },
  );
  cert = readFileSync(join(dir, 'tls.crt'));
  srv = await startWebhookServer({ cert, key: readFileSync(join(dir, 'tls.key')) }, { host: '127.0.0.1', port: 0 }, OPTS, silentLogger());
});

after(async () => {
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(method: string, path: string, body?: string): Promise<{ status: number; json: Obj }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: srv.port, path, method, ca: cert, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) as Obj });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const reviewOf = (pod: unknown, extra: Obj = {}): Obj => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'd3b8a1c2-0000-4000-8000-000000000001',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    operation: 'CREATE',
    namespace: 'default',
    object: pod,
    ...extra,
  },
});

function templatesOf(obj: Obj): Obj[] {
  if (obj.kind === 'List') return (obj.items as Obj[]).flatMap(templatesOf);
  const path = TEMPLATE_PATHS[obj.kind as string];
  return path ? [path.reduce<Obj>((o, k) => o?.[k], obj)] : [];
}

const podOf = (tpl: Obj): Obj => {
  const pod: Obj = { apiVersion: 'v1', kind: 'Pod', metadata: structuredClone(tpl.metadata ?? {}), spec: structuredClone(tpl.spec) };
  pod.metadata.labels = { ...pod.metadata.labels, [INJECT_LABEL]: 'enabled' };
  return pod;
};

test('the webhook patches every fixture pod exactly as inject does (shared golden fixtures)', async () => {
  let compared = 0;
  let unchanged = 0;
  for (const f of injectFixtures()) {
    const input = parseYamlDocs(readFileSync(INJECT_DIR + f, 'utf8'), f);
    for (const src of input) {
      const inObj = src.doc.toJS() as Obj;
      for (const tpl of templatesOf(inObj)) {
        const pod = podOf(tpl);
        // inject's answer for the same pod, through the YAML path
        const injected = injectDocs(parseYamlDocs(JSON.stringify(pod), f), { ...DEFAULT_AGENT_OPTIONS, createSecret: false, networkPolicy: true, strict: false });
        const expected = injected.docs[0]!.toJS() as Obj;

        const { status, json } = await call('POST', '/mutate', JSON.stringify(reviewOf(pod)));
        assert.equal(status, 200, f);
        assert.equal(json.kind, 'AdmissionReview');
        assert.equal(json.response.uid, 'd3b8a1c2-0000-4000-8000-000000000001');
        assert.equal(json.response.allowed, true);
        if (injected.skipped.length > 0) {
          assert.equal(json.response.patch, undefined, `${f}: a pod inject skips gets no patch`);
          assert.equal(json.response.warnings.length, 1);
          unchanged++;
          continue;
        }
        assert.equal(json.response.patchType, 'JSONPatch');
        const ops = JSON.parse(Buffer.from(json.response.patch as string, 'base64').toString()) as Operation[];
        const patched = jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument;
        assert.deepEqual(patched, expected, `${f}: webhook and inject disagree`);
        assert.ok(validateK8s(patched));
        compared++;
      }
    }
  }
  assert.ok(compared >= 10, `compared ${compared}`);
  assert.ok(unchanged >= 1);
});

test('a pod the webhook already injected is not changed again', async () => {
  const pod = podOf(templatesOf(parseYamlDocs(readFileSync(INJECT_DIR + '06-pod-multi-container.yaml', 'utf8'), 'x')[0]!.doc.toJS() as Obj)[0]!);
  const first = await call('POST', '/mutate', JSON.stringify(reviewOf(pod)));
  const ops = JSON.parse(Buffer.from(first.json.response.patch as string, 'base64').toString()) as Operation[];
  const patched = jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument;
  const second = await call('POST', '/mutate', JSON.stringify(reviewOf(patched)));
  assert.equal(second.json.response.allowed, true);
  assert.equal(second.json.response.patch, undefined);
});

test('pods without the opt-in label, other operations and other kinds pass unchanged', async () => {
  const plain = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { app: 'p' } }, spec: { containers: [{ name: 'a', image: 'b' }] } };
  for (const review of [reviewOf(plain), reviewOf(podOf(plain), { operation: 'UPDATE' }), reviewOf(podOf(plain), { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } })]) {
    const { status, json } = await call('POST', '/mutate', JSON.stringify(review));
    assert.equal(status, 200);
    assert.deepEqual(json.response, { uid: review.request.uid, allowed: true });
  }
});

test('malformed reviews get a clean error response and the server keeps serving', async () => {
  const cases: [string, number, RegExp][] = [
    ['{not json', 400, /invalid JSON/],
    ['[1,2]', 400, /not a JSON object/],
    [JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } }), 400, /admission\.k8s\.io\/v1beta1/],
    [JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} }), 400, /request\.uid is missing/],
    [JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 400, /request\.uid is missing/],
  ];
  for (const [body, code, re] of cases) {
    const { status, json } = await call('POST', '/mutate', body);
    assert.equal(status, code, body);
    assert.match(json.error as string, re);
  }
  // No object: no opt-in label, so the pod is admitted (with a warning), not denied.
  const noObject = await call('POST', '/mutate', JSON.stringify(reviewOf(undefined)));
  assert.equal(noObject.status, 200);
  assert.equal(noObject.json.response.allowed, true);
  assert.match(noObject.json.response.warnings[0] as string, /not an object/);
  const weird = await call('POST', '/mutate', JSON.stringify(reviewOf({ metadata: { labels: { [INJECT_LABEL]: 'enabled' } }, spec: { containers: 'oops' } })));
  assert.equal(weird.status, 200);
  assert.match(weird.json.response.warnings[0] as string, /no containers/);
  const big = await call('POST', '/mutate', 'x'.repeat(4 * 1024 * 1024));
  assert.equal(big.status, 413);
  assert.equal((await call('GET', '/nope')).status, 404);
  const health = await call('GET', '/healthz');
  assert.deepEqual([health.status, health.json], [200, { status: 'ok' }]);
});

test('--strict denies an opted-in hostNetwork pod with the reason', async () => {
  const strict = await startWebhookServer({ cert, key: readFileSync(join(dir, 'tls.key')) }, { host: '127.0.0.1', port: 0 }, { ...OPTS, strict: true }, silentLogger());
  try {
    const pod = podOf({ metadata: { name: 'h', labels: { app: 'h' } }, spec: { hostNetwork: true, containers: [{ name: 'a', image: 'b' }] } });
    const body = JSON.stringify(reviewOf(pod));
    const json = await new Promise<Obj>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: strict.port, path: '/mutate', method: 'POST', ca: cert }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as Obj));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(json.response.allowed, false);
    assert.match(json.response.status.message as string, /hostNetwork/);
  } finally {
    await strict.close();
  }
});
