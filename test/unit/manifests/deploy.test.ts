import { AGENT_ENV, AGENT_NODE_FLAGS } from '../../../src/sidecar/runtime.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerWebhook } from '../../../src/cli/webhook.js';
import { injectDocs, injectPod, TEMPLATE_PATHS } from '../../../src/manifests/inject.js';
import { agentContainer, DEFAULT_AGENT_OPTIONS, headlessService, memberPolicy } from '../../../src/manifests/sidecar.js';
import { parseYamlDocs, stringifyDocs } from '../../../src/manifests/yamlio.js';
import { ROOT } from './fixtures.js';
import { validateK8s } from './k8s-schema.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const DEPLOY = `${ROOT}deploy/`;
const yamlFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : []));
const load = (file: string): Obj[] => parseYamlDocs(readFileSync(file, 'utf8'), file).map((d) => d.doc.toJS() as Obj);

test('every deploy/ manifest parses; every built-in object validates against the Kubernetes schemas', () => {
  const files = yamlFiles(DEPLOY);
  assert.ok(files.length >= 10);
  const unvalidated: string[] = [];
  let validated = 0;
  for (const f of files) {
    for (const obj of load(f)) {
      if (validateK8s(obj)) validated++;
      else unvalidated.push(`${obj.apiVersion as string} ${obj.kind as string}`);
    }
  }
  assert.ok(validated >= 12, `validated ${validated}`);
  // Only the kustomize files themselves and cert-manager's custom resources have no built-in schema.
  assert.deepEqual([...new Set(unvalidated)].sort(), ['cert-manager.io/v1 Certificate', 'cert-manager.io/v1 Issuer', 'kustomize.config.k8s.io/v1beta1 Kustomization']);
});

test('kustomizations list files that exist, one object kind per resource file', () => {
  for (const dir of ['kustomize/base', 'kustomize/cert-manager']) {
    const [k] = load(`${DEPLOY}${dir}/kustomization.yaml`);
    assert.equal(k!.kind, 'Kustomization');
    for (const r of k!.resources as string[]) assert.ok(existsSync(join(DEPLOY, dir, r)), `${dir}: ${r}`);
  }
  const base = load(`${DEPLOY}kustomize/base/kustomization.yaml`)[0]!;
  const kinds = (base.resources as string[]).flatMap((r) => load(`${DEPLOY}kustomize/base/${r}`).map((o) => o.kind));
  assert.deepEqual(kinds.sort(), ['Deployment', 'MutatingWebhookConfiguration', 'Namespace', 'Service', 'ServiceAccount']);
});

test('the MutatingWebhookConfiguration: pods, CREATE, opt-in label, kube-system excluded, no side effects, short timeout', () => {
  const [mwc] = load(`${DEPLOY}kustomize/base/mutatingwebhookconfiguration.yaml`);
  const [svc] = load(`${DEPLOY}kustomize/base/service.yaml`);
  const wh = mwc!.webhooks[0];
  assert.deepEqual(wh.admissionReviewVersions, ['v1']);
  assert.deepEqual(wh.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
  assert.deepEqual(wh.objectSelector, { matchLabels: { 'kmcast.io/inject': 'enabled' } });
  assert.ok(wh.namespaceSelector.matchExpressions[0].values.includes('kube-system'));
  assert.equal(wh.sideEffects, 'None');
  assert.ok(wh.timeoutSeconds <= 10);
  assert.ok(['Fail', 'Ignore'].includes(wh.failurePolicy));
  assert.deepEqual(wh.clientConfig.service, { name: svc!.metadata.name, namespace: svc!.metadata.namespace, path: '/mutate', port: 443 });
  const patch = load(`${DEPLOY}kustomize/cert-manager/kustomization.yaml`)[0]!.patches[0];
  assert.match(patch.patch as string, /cert-manager\.io\/inject-ca-from: kmcast-system\/kmcast-webhook/);
  const cert = load(`${DEPLOY}kustomize/cert-manager/certificate.yaml`).find((o) => o.kind === 'Certificate')!;
  assert.ok((cert.spec.dnsNames as string[]).includes(`${svc!.metadata.name as string}.${svc!.metadata.namespace as string}.svc`));
});

test('the webhook Deployment uses only flags the webhook command has', () => {
  const program = new Command();
  registerWebhook(program);
  const flags = new Set(program.commands[0]!.options.map((o) => o.long));
  const [dep] = load(`${DEPLOY}kustomize/base/deployment.yaml`);
  const c = dep!.spec.template.spec.containers[0];
  assert.equal(c.args[0], 'webhook');
  for (const a of (c.args as string[]).slice(1)) assert.ok(flags.has(a.split('=')[0]), a);
  assert.equal(c.readinessProbe.httpGet.path, '/healthz');
  assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
});

test('deploy/examples/probe.injected.yaml is exactly kmcast inject of probe.yaml', () => {
  const src = parseYamlDocs(readFileSync(`${DEPLOY}examples/probe.yaml`, 'utf8'), 'probe.yaml');
  const out = stringifyDocs(injectDocs(src, { ...DEFAULT_AGENT_OPTIONS, createSecret: false, networkPolicy: true, strict: true }).docs);
  assert.equal(readFileSync(`${DEPLOY}examples/probe.injected.yaml`, 'utf8'), out, 'regenerate: kmcast inject -f deploy/examples/probe.yaml');
  const objs = load(`${DEPLOY}examples/probe.injected.yaml`);
  assert.deepEqual(
    objs.map((o) => o.kind),
    ['Deployment', 'Service', 'NetworkPolicy', 'Job'],
  );
});

test('deploy/examples/probe-webhook.yaml: its Service and policy are what inject emits; its pods inject into the same set', () => {
  const objs = load(`${DEPLOY}examples/probe-webhook.yaml`);
  const svc = objs.find((o) => o.kind === 'Service')!;
  const np = objs.find((o) => o.kind === 'NetworkPolicy')!;
  assert.deepEqual(svc.spec, headlessService('probe', undefined, 'x', DEFAULT_AGENT_OPTIONS).spec);
  assert.deepEqual(np.spec, memberPolicy('probe', undefined, 'x', DEFAULT_AGENT_OPTIONS).spec);
  for (const w of objs.filter((o) => TEMPLATE_PATHS[o.kind as string] && o.kind !== 'Pod')) {
    const tpl = w.spec.template;
    const { pod, app } = injectPod({ apiVersion: 'v1', kind: 'Pod', metadata: tpl.metadata, spec: tpl.spec }, DEFAULT_AGENT_OPTIONS);
    assert.equal(app, 'probe');
    assert.equal(pod.metadata && (pod.metadata as Obj).labels['kmcast.io/member'], 'probe');
  }
});

test('the sidecar passes only agent flags the agent defines, as KMCAST_* env', () => {
  // The agent's fixed flag set (DESIGN section 3 and the agent contract); KMCAST_POD_IP is the downward API.
  const agentFlags = [
    'service',
    'peers',
    'dns-server',
    'interface',
    'device',
    'vni',
    'vxlan-port',
    'control-port',
    'http',
    'key-file',
    'addressing',
    'broadcast',
    'unregistered',
    'heartbeat-interval',
    'peer-expiry',
    'resolve-interval',
    'insecure-no-allowlist',
    'setup-only',
    'log-level',
  ];
  const allowed = new Set([...agentFlags.map((f) => `KMCAST_${f.toUpperCase().replace(/-/g, '_')}`), 'KMCAST_POD_IP']);
  const c = agentContainer('app', DEFAULT_AGENT_OPTIONS, true);
  for (const e of c.env!) if (e.name.startsWith('KMCAST_')) assert.ok(allowed.has(e.name), e.name);
  assert.ok(c.env!.some((e) => e.name === 'KMCAST_SERVICE'));
});

test('Dockerfile: node 20 bookworm slim, iproute2 from backports, nftables, kmcast entrypoint, no host names', () => {
  const df = readFileSync(`${DEPLOY}Dockerfile`, 'utf8');
  const froms = [...df.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(froms, ['node:20-bookworm-slim', 'node:20-bookworm-slim']);
  assert.match(df, /apt-get install -y --no-install-recommends -t bookworm-backports iproute2/);
  assert.match(df, /apt-get install -y --no-install-recommends nftables/);
  // The image starts node as the lab does (src/sidecar/runtime.ts), so the benchmarks measure what ships.
  const flags = AGENT_NODE_FLAGS.map((f) => `"${f}", `).join('');
  assert.ok(df.includes(`ENTRYPOINT ["node", ${flags}"/app/dist/src/cli/main.js"]`), 'entrypoint with the agent runtime flags');
  for (const [k, v] of Object.entries(AGENT_ENV)) assert.match(df, new RegExp(`^ENV .*\\b${k}=${v}\\b`, 'm'));
  assert.doesNotMatch(df, /:\/\/|deb\.debian|\.org\b|\.com\b|\.io\b/);
  const ignore = readFileSync(`${DEPLOY}Dockerfile.dockerignore`, 'utf8');
  for (const m of df.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of m[1]!.split(' ')) assert.ok(ignore.includes(`!${src}`) || ignore.includes(`!${src}/`), `${src} is in the build context`);
  }
});

test('bookworm-backports.sh copies the bookworm stanza with only the Suites line changed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kmc-backports-'));
  try {
    const stanza = (suites: string, uri: string): string => `Types: deb\nURIs: ${uri}\nSuites: ${suites}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`;
    writeFileSync(join(dir, 'in'), `${stanza('bookworm-security', 'mirror-b')}\n${stanza('bookworm bookworm-updates', 'mirror-a')}`);
    const r = spawnSync('sh', [`${DEPLOY}bookworm-backports.sh`, join(dir, 'in'), join(dir, 'out')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(dir, 'out'), 'utf8').trim(), stanza('bookworm-backports', 'mirror-a').trim());
    writeFileSync(join(dir, 'in2'), stanza('trixie', 'mirror-c'));
    const bad = spawnSync('sh', [`${DEPLOY}bookworm-backports.sh`, join(dir, 'in2'), join(dir, 'out2')], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /no stanza with Suites: bookworm/);
    assert.ok(!existsSync(join(dir, 'out2')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
