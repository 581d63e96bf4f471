import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';
import { InputError } from '../../../src/errors.js';
import { injectDocs, TEMPLATE_PATHS } from '../../../src/manifests/inject.js';
import type { InjectOptions } from '../../../src/manifests/inject.js';
import { DEFAULT_AGENT_OPTIONS, MEMBER_LABEL, STATUS_ANNOTATION } from '../../../src/manifests/sidecar.js';
import { parseYamlDocs, stringifyDocs } from '../../../src/manifests/yamlio.js';
import { GOLDEN_DIR, INJECT_DIR, injectFixtures } from './fixtures.js';
import { validateK8s } from './k8s-schema.js';

const OPTS: InjectOptions = { ...DEFAULT_AGENT_OPTIONS, createSecret: false, networkPolicy: true, strict: false };
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function run(text: string, opts: Partial<InjectOptions> = {}, file = 'in.yaml'): { yaml: string; report: string[]; injected: string[]; skipped: string[] } {
  const r = injectDocs(parseYamlDocs(text, file), { ...OPTS, ...opts });
  return { yaml: stringifyDocs(r.docs), report: r.report, injected: r.injected, skipped: r.skipped };
}

const objects = (yaml: string): Obj[] => parseYamlDocs(yaml, 'out.yaml').map((d) => d.doc.toJS() as Obj);

function templates(obj: Obj): Obj[] {
  if (obj.kind === 'List') return (obj.items as Obj[]).flatMap(templates);
  const path = TEMPLATE_PATHS[obj.kind as string];
  if (!path) return [];
  return [path.reduce<Obj>((o, k) => o?.[k], obj)];
}

/** Removes what kmcast adds, per the status annotation, to compare with the user's input. */
function uninject(obj: Obj): Obj {
  const copy = structuredClone(obj);
  for (const tpl of templates(copy)) {
    const status = tpl.metadata?.annotations?.[STATUS_ANNOTATION];
    if (!status) continue;
    const s = JSON.parse(status) as { initContainers: string[]; containers: string[]; volumes: string[] };
    const spec = tpl.spec as Obj;
    for (const [key, drop] of [
      ['initContainers', s.initContainers],
      ['containers', s.containers],
      ['volumes', s.volumes],
    ] as const) {
      if (!spec[key]) continue;
      spec[key] = (spec[key] as Obj[]).filter((c) => !drop.includes(c.name as string));
      if (spec[key].length === 0) delete spec[key];
    }
    delete tpl.metadata.annotations[STATUS_ANNOTATION];
    if (Object.keys(tpl.metadata.annotations).length === 0) delete tpl.metadata.annotations;
    delete tpl.metadata.labels[MEMBER_LABEL];
    if (Object.keys(tpl.metadata.labels).length === 0) delete tpl.metadata.labels;
    if (Object.keys(tpl.metadata).length === 0) delete tpl.metadata;
  }
  return copy;
}

const fixtures = injectFixtures();

test('there are at least 10 inject fixtures of different kinds', () => {
  assert.ok(fixtures.length >= 10);
  const kinds = new Set(fixtures.flatMap((f) => parseYamlDocs(readFileSync(INJECT_DIR + f, 'utf8'), f).map((d) => (d.doc.toJS() as Obj).kind)));
  for (const k of ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'Pod', 'List', 'NetworkPolicy']) assert.ok(kinds.has(k), k);
});

for (const legacy of [false, true]) {
  for (const f of fixtures) {
    test(`inject ${legacy ? '--legacy ' : ''}${f}: golden output, schema-valid, idempotent, user fields kept`, () => {
      const input = readFileSync(INJECT_DIR + f, 'utf8');
      const once = run(input, { legacy });
      // Snapshot: regenerate with KMCAST_UPDATE_GOLDEN=1 after a deliberate change and review the diff.
      const golden = `${GOLDEN_DIR}${legacy ? 'legacy-' : ''}${f}`;
      if (process.env.KMCAST_UPDATE_GOLDEN === '1' || !existsSync(golden)) {
        mkdirSync(GOLDEN_DIR, { recursive: true });
        writeFileSync(golden, once.yaml);
      }
      assert.equal(once.yaml, readFileSync(golden, 'utf8'));

      const twice = run(once.yaml, { legacy });
      assert.equal(twice.yaml, once.yaml, 'injecting twice must equal injecting once');

      const out = objects(once.yaml);
      let validated = 0;
      for (const o of out) if (validateK8s(o)) validated++;
      assert.ok(validated >= 1);

      // Everything the user wrote is still there, unchanged, once kmcast's additions are removed.
      const inObjs = objects(input);
      const userOut = out.filter((o) => !o.metadata?.annotations?.['kmcast.io/generated-for']).map(uninject);
      const inNoStatus = inObjs.map(uninject);
      assert.deepEqual(userOut, inNoStatus);

      for (const tpl of out.flatMap(templates)) {
        const status = tpl.metadata?.annotations?.[STATUS_ANNOTATION];
        if (!status) continue;
        const spec = tpl.spec as Obj;
        const agent = [...(spec.initContainers ?? []), ...spec.containers].find((c: Obj) => c.name === 'kmcast') as Obj;
        assert.deepEqual(agent.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
        assert.notEqual(agent.securityContext.privileged, true);
        assert.ok(agent.resources.requests && agent.resources.limits);
        assert.deepEqual(agent.env.find((e: Obj) => e.name === 'KMCAST_POD_IP').valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });
        if (legacy) {
          assert.equal(spec.initContainers[0].name, 'kmcast-setup');
          assert.deepEqual(spec.initContainers[0].args, ['agent', '--setup-only']);
          assert.equal(agent.restartPolicy, undefined);
          assert.equal(spec.containers.at(-1).name, 'kmcast');
        } else {
          assert.equal(spec.initContainers[0].name, 'kmcast', 'the native sidecar comes first');
          assert.equal(agent.restartPolicy, 'Always');
          assert.equal(agent.startupProbe.httpGet.path, '/readyz');
          assert.ok(!spec.containers.some((c: Obj) => c.name === 'kmcast'));
        }
        const app = tpl.metadata.labels[MEMBER_LABEL] as string;
        const svc = out.find((o) => o.kind === 'Service' && o.metadata.name === `${app}-kmcast`);
        assert.ok(svc, `Service ${app}-kmcast emitted`);
        assert.equal(svc.spec.clusterIP, 'None');
        assert.equal(svc.spec.publishNotReadyAddresses, true);
        assert.deepEqual(svc.spec.selector, { [MEMBER_LABEL]: app });
        assert.equal(agent.env.find((e: Obj) => e.name === 'KMCAST_SERVICE').value, `${app}-kmcast.$(POD_NAMESPACE).svc.cluster.local`);
        const np = out.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === `${app}-kmcast`);
        assert.deepEqual(np?.spec.ingress, [
          {
            from: [{ podSelector: { matchLabels: { [MEMBER_LABEL]: app } } }],
            ports: [
              { protocol: 'UDP', port: 7471 },
              { protocol: 'UDP', port: 7470 },
            ],
          },
        ]);
        assert.deepEqual(spec.volumes.find((v: Obj) => v.name === 'kmcast-key').secret.secretName, `${app}-kmcast-key`);
      }
    });
  }
}

test('comments and field order survive injection', () => {
  const out = run(readFileSync(INJECT_DIR + '01-deployment-comments.yaml', 'utf8')).yaml;
  for (const c of ['# Market data fan-out', '# keep this name, dashboards use it', '# pinned on purpose']) assert.ok(out.includes(c), c);
  const keys = Object.keys(parse(out.split('\n---\n')[0]!.replace(/^---\n/, '')).spec);
  assert.deepEqual(keys, ['replicas', 'selector', 'template']);
  const daemon = run(readFileSync(INJECT_DIR + '03-daemonset-existing-init.yaml', 'utf8')).yaml;
  assert.ok(daemon.includes('# Runs before the app; must see vx0 already'));
});

test('an existing NetworkPolicy is kept and the members policy is added beside it', () => {
  const out = objects(run(readFileSync(INJECT_DIR + '08-with-networkpolicy.yaml', 'utf8')).yaml);
  assert.deepEqual(
    out.filter((o) => o.kind === 'NetworkPolicy').map((o) => o.metadata.name),
    ['default-deny', 'ledger-http', 'ledger-kmcast'],
  );
  assert.equal(out.find((o) => o.metadata.name === 'ledger-kmcast')!.metadata.namespace, 'pay');
});

test('Lists are unpacked: items injected in place, generated objects follow the List', () => {
  const r = run(readFileSync(INJECT_DIR + '07-list.yaml', 'utf8'));
  assert.deepEqual(r.injected, ['Deployment/chat']);
  const out = objects(r.yaml);
  assert.deepEqual(
    out.map((o) => o.kind),
    ['List', 'Service', 'NetworkPolicy'],
  );
  assert.equal(out[0]!.items[1].spec.template.spec.initContainers[0].name, 'kmcast');
});

test('a hostNetwork pod is skipped with the reason, and --strict makes it an error with file:line', () => {
  const input = readFileSync(INJECT_DIR + '12-pod-hostnetwork.yaml', 'utf8');
  const r = run(input);
  assert.deepEqual(r.skipped, ['Pod/node-agent']);
  assert.equal(r.yaml.trim(), `---\n${input.trim()}`);
  assert.ok(r.report.some((l) => l.includes('hostNetwork') && l.includes('skipped Pod/node-agent')));
  assert.throws(
    () => run(input, { strict: true }, 'pods.yaml'),
    (e: unknown) => e instanceof InputError && /^pods\.yaml:1: inject Pod\/node-agent: hostNetwork/.test(e.message),
  );
});

test('a custom resource passes through unchanged with a note; ConfigMaps pass silently', () => {
  const r = run(readFileSync(INJECT_DIR + '11-mixed-stream.yaml', 'utf8'));
  assert.deepEqual(r.injected, ['Deployment/radio']);
  assert.ok(r.report.some((l) => l.includes('Rollout/radio-canary') && l.includes('passed through unchanged')));
  const out = objects(r.yaml);
  assert.equal(out[1]!.spec.template.spec.initContainers, undefined);
});

test('re-injecting an older legacy injection upgrades it in place to the native sidecar', () => {
  const out = objects(run(readFileSync(INJECT_DIR + '13-legacy-injected-upgrade.yaml', 'utf8')).yaml);
  const spec = out[0]!.spec;
  assert.deepEqual(
    spec.initContainers.map((c: Obj) => c.name),
    ['kmcast'],
  );
  assert.deepEqual(
    spec.containers.map((c: Obj) => c.name),
    ['relay'],
  );
  assert.deepEqual(
    spec.volumes.map((v: Obj) => v.name),
    ['kmcast-key'],
  );
  assert.equal(JSON.parse(out[0]!.metadata.annotations[STATUS_ANNOTATION]).mode, 'native');
});

test('--legacy refuses Jobs: an ordinary sidecar would keep them from completing', () => {
  const r = run(readFileSync(INJECT_DIR + '04-job.yaml', 'utf8'), { legacy: true });
  assert.deepEqual(r.skipped, ['Job/sync-once']);
  assert.ok(r.report.some((l) => l.includes('never complete')));
});

test('a user container named kmcast without the status annotation is refused, not overwritten', () => {
  const input = 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: a}, {name: kmcast, image: mine}]\n';
  const r = run(input);
  assert.deepEqual(r.skipped, ['Pod/p']);
  assert.ok(r.report.some((l) => l.includes('container kmcast already exists')));
});

test('--create-secret emits a random key once and keeps it on re-injection', () => {
  const input = readFileSync(INJECT_DIR + '04-job.yaml', 'utf8');
  const a = run(input, { createSecret: true });
  const b = run(input, { createSecret: true });
  const secretOf = (y: string): Obj => objects(y).find((o) => o.kind === 'Secret')!;
  assert.notEqual(secretOf(a.yaml).data.key, secretOf(b.yaml).data.key, 'each run makes a fresh key');
  assert.match(Buffer.from(secretOf(a.yaml).data.key, 'base64').toString(), /^[0-9a-f]{64}\n$/);
  assert.ok(validateK8s(secretOf(a.yaml)));
  const again = run(a.yaml, { createSecret: true });
  assert.equal(again.yaml, a.yaml);
  const without = run(input);
  assert.ok(without.report.some((l) => l.includes('kubectl create secret generic sync-once-kmcast-key')));
});

test('--no-network-policy emits no policy; custom ports reach the sidecar, Service and policy', () => {
  const input = readFileSync(INJECT_DIR + '09-replicaset-flow-style.yaml', 'utf8');
  const out = objects(run(input, { networkPolicy: false, vxlanPort: 17471, controlPort: 17470, vni: 99 }).yaml);
  assert.deepEqual(
    out.map((o) => o.kind),
    ['ReplicaSet', 'Service'],
  );
  const env = out[0]!.spec.template.spec.initContainers[0].env as Obj[];
  assert.equal(env.find((e) => e.name === 'KMCAST_VXLAN_PORT')!.value, '17471');
  assert.equal(env.find((e) => e.name === 'KMCAST_VNI')!.value, '99');
  assert.equal(out[1]!.spec.ports[0].port, 17470);
});

test('bad input: one line with file and line', () => {
  const cases: [string, RegExp][] = [
    ['apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n', /^bad\.yaml:[45]: parse YAML: /],
    ['apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n', /^bad\.yaml:2: unknown kind "Deploymnet" in apps\/v1/],
    ['---\nkind: Pod\nmetadata: {name: x}\n', /^bad\.yaml:2: read object: missing apiVersion or kind/],
    ['- just\n- a list\n', /^bad\.yaml:1: read object: expected a Kubernetes object/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => run(text, {}, 'bad.yaml'),
      (e: unknown) => e instanceof InputError && e.exitCode === 2 && re.test(e.message) && !e.message.includes('\n'),
      text,
    );
  }
});

test('an invalid application name is refused with what to do instead', () => {
  const r = run('apiVersion: v1\nkind: Pod\nmetadata: {name: Game_Server}\nspec: {containers: [{name: a, image: b}]}\n');
  assert.ok(r.report.some((l) => l.includes('"Game_Server" cannot name a Service') && l.includes('kmcast.io/name')));
});

test('the report says what the sidecar cannot do for sockets bound to eth0, once, and only when it injected', () => {
  const r = run(readFileSync(INJECT_DIR + '01-deployment-comments.yaml', 'utf8'));
  assert.equal(r.report.filter((l) => l.includes('bound to eth0') && l.includes('node mode')).length, 1);
  assert.ok(!run(readFileSync(INJECT_DIR + '12-pod-hostnetwork.yaml', 'utf8')).report.some((l) => l.includes('bound to eth0')));
});
