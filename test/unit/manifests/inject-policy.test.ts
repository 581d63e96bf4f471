/**
 * `inject` emits the members' NetworkPolicy only where it cannot break the app: when asked
 * (--network-policy), or when the input already holds a policy that selects the pods (their
 * ingress is restricted already, so without the kmcast ports the members could not talk).
 * Where no policy selected the pods, an added one would silently deny the app's other ingress.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { injectDocs } from '../../../src/manifests/inject.js';
import { DEFAULT_AGENT_OPTIONS } from '../../../src/manifests/sidecar.js';
import { parseYamlDocs, stringifyDocs } from '../../../src/manifests/yamlio.js';
import { INJECT_DIR, ROOT } from './fixtures.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const kinds = (yaml: string): string[] => parseYamlDocs(yaml, 'out').map((d) => `${(d.doc.toJS() as Obj).kind}/${(d.doc.toJS() as Obj).metadata?.name}`);
const cli = (...args: string[]): { status: number | null; stdout: string; stderr: string } => {
  const r = spawnSync(process.execPath, [`${ROOT}dist/src/cli/main.js`, 'inject', ...args], { encoding: 'utf8', cwd: ROOT, timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

test('kmcast inject emits no NetworkPolicy by default where none selected the pods, and says when one is needed', () => {
  const r = cli('-f', `${INJECT_DIR}01-deployment-comments.yaml`);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!kinds(r.stdout).some((k) => k.startsWith('NetworkPolicy/')), kinds(r.stdout).join(', '));
  assert.match(r.stderr, /no NetworkPolicy emitted.*default-deny.*--network-policy/s);
});

test('kmcast inject --network-policy emits it, with the warning about the other ingress', () => {
  const r = cli('-f', `${INJECT_DIR}01-deployment-comments.yaml`, '--network-policy');
  assert.equal(r.status, 0, r.stderr);
  assert.ok(kinds(r.stdout).some((k) => k.startsWith('NetworkPolicy/')));
  assert.match(r.stderr, /other ingress is now denied/);
});

test('inject emits the policy when the input already holds one selecting the pods (default-deny); --no-network-policy still wins', () => {
  const r = cli('-f', `${INJECT_DIR}08-with-networkpolicy.yaml`);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(kinds(r.stdout).includes('NetworkPolicy/ledger-kmcast'), kinds(r.stdout).join(', '));
  assert.match(r.stderr, /NetworkPolicy\/ledger-kmcast.*NetworkPolicy\/default-deny/);
  const off = cli('-f', `${INJECT_DIR}08-with-networkpolicy.yaml`, '--no-network-policy');
  assert.equal(off.status, 0, off.stderr);
  assert.ok(!kinds(off.stdout).includes('NetworkPolicy/ledger-kmcast'));
  assert.match(off.stderr, /pods are selected by NetworkPolicy\/default-deny.*UDP 7471 and 7470/);
});

test('auto mode: a policy selects the pods only in their namespace, by matchLabels and matchExpressions, for ingress', () => {
  const app = readFileSync(`${INJECT_DIR}01-deployment-comments.yaml`, 'utf8');
  const ns = (parseYamlDocs(app, 'a')[0]!.doc.toJS() as Obj).metadata.namespace as string | undefined;
  const labels = (parseYamlDocs(app, 'a')[0]!.doc.toJS() as Obj).spec.template.metadata.labels as Record<string, string>;
  const [k, v] = Object.entries(labels)[0]!;
  const policy = (meta: Obj, spec: Obj): string => `---\n${JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'p', ...meta }, spec })}\n`;
  const nsMeta = ns ? { namespace: ns } : {};
  const cases: [string, boolean][] = [
    [policy(nsMeta, { podSelector: { matchLabels: { [k]: v } } }), true],
    [policy(nsMeta, { podSelector: { matchExpressions: [{ key: k, operator: 'In', values: [v] }] } }), true],
    [policy(nsMeta, { podSelector: { matchExpressions: [{ key: k, operator: 'NotIn', values: [v] }] } }), false],
    [policy(nsMeta, { podSelector: { matchLabels: { [k]: `${v}-other` } } }), false],
    [policy({ namespace: 'elsewhere' }, { podSelector: {} }), false],
    [policy(nsMeta, { podSelector: {}, policyTypes: ['Egress'] }), false],
  ];
  for (const [p, expect] of cases) {
    const r = injectDocs(parseYamlDocs(app + p, 'in.yaml'), { ...DEFAULT_AGENT_OPTIONS, createSecret: false, networkPolicy: 'auto', strict: false });
    const out = kinds(stringifyDocs(r.docs));
    assert.equal(
      out.some((x) => x.endsWith('-kmcast') && x.startsWith('NetworkPolicy/')),
      expect,
      p,
    );
  }
});
