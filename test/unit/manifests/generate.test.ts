import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/errors.js';
import { generate, MODES } from '../../../src/manifests/generate.js';
import type { GenerateOptions } from '../../../src/manifests/generate.js';
import { parseGroupSpec } from '../../../src/manifests/groups.js';
import { lintDocs } from '../../../src/manifests/lint.js';
import { DEFAULT_AGENT_OPTIONS } from '../../../src/manifests/sidecar.js';
import { parseYamlDocs } from '../../../src/manifests/yamlio.js';
import { checkPodSecurity } from '../../../src/manifests/pss.js';
import { validateK8s } from './k8s-schema.js';
import { kustomizeText } from './kubectl.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const base: GenerateOptions = {
  name: 'ticker',
  image: 'example/ticker:2',
  groups: [parseGroupSpec('239.1.1.1:5000')],
  mode: 'overlay',
  replicas: 3,
  multusType: 'macvlan',
  master: 'eth1',
  subnet: '10.201.0.0/24',
  createSecret: false,
  agent: DEFAULT_AGENT_OPTIONS,
};

const objs = (yaml: string): Obj[] => parseYamlDocs(yaml, 'gen.yaml').map((d) => d.doc.toJS() as Obj);

const variants: Partial<GenerateOptions>[] = [
  {},
  { namespace: 'trading', replicas: 1 },
  { groups: ['239.1.1.1:5000', '239.1.1.2:5001', '239.255.0.9:5000'].map((g) => parseGroupSpec(g)), createSecret: true },
  { name: 'a', multusType: 'ipvlan', master: 'ens4', subnet: '192.168.50.0/24' },
  { agent: { ...DEFAULT_AGENT_OPTIONS, legacy: true, image: 'example/kmcast:dev' } },
];

for (const mode of MODES) {
  for (const [i, v] of variants.entries()) {
    test(`generate --mode ${mode} (variant ${i}): schema-valid, lint-clean, commented`, () => {
      const o = { ...base, ...v, mode };
      if (mode === 'node' && (o.createSecret || o.agent.legacy)) {
        // Sidecar-only options are refused in node mode, naming the flag.
        assert.throws(
          () => generate(o),
          (e: unknown) => e instanceof ConfigError && /^--(create-secret|legacy): only for --mode overlay/.test(e.message),
        );
        return;
      }
      const { yaml } = generate(o);
      assert.equal(kustomizeText(yaml, `generate --mode ${mode}`).length, objs(yaml).length, 'kubectl kustomize reads every object');
      assert.ok(yaml.startsWith(`---\n# kmcast generate --mode ${mode}: ${o.name}`), 'starts with the explaining comment');
      const out = objs(yaml);
      for (const obj of out) {
        if (obj.kind === 'NetworkAttachmentDefinition') continue; // a CRD: no OpenAPI schema in kubernetes-models
        assert.ok(validateK8s(obj), `${obj.kind} has a schema`);
        if (o.namespace && obj.kind !== 'Namespace') assert.equal(obj.metadata.namespace, o.namespace);
      }
      assert.deepEqual(lintDocs(parseYamlDocs(yaml, 'gen.yaml')), [], 'our own output passes our own lint');
      const dep = out.find((x) => x.kind === 'Deployment')!;
      const spec = dep.spec.template.spec;
      assert.equal(dep.spec.replicas, o.replicas);
      const app = spec.containers[0];
      assert.equal(app.image, o.image);
      assert.equal(app.env[0].value, o.groups.map((g) => `${g.address}:${g.port}`).join(','));
      assert.deepEqual(
        app.ports.map((p: Obj) => p.protocol),
        [...new Set(o.groups.map((g) => g.port))].map(() => 'UDP'),
      );

      if (mode === 'overlay') {
        const agent = [...(spec.initContainers ?? []), ...spec.containers].find((c: Obj) => c.name === 'kmcast');
        assert.equal(agent.image, o.agent.image);
        assert.deepEqual(
          out.map((x) => x.kind),
          ['Deployment', 'Service', 'NetworkPolicy', ...(o.createSecret ? ['Secret'] : [])],
        );
        assert.equal(spec.hostNetwork, undefined);
      } else if (mode === 'node') {
        const kinds = out.map((x) => x.kind);
        assert.deepEqual(kinds, [...(o.namespace ? ['Namespace'] : []), 'Deployment', 'Service']);
        if (o.namespace) assert.equal(out[0]!.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
        assert.deepEqual(checkPodSecurity(dep.spec.template, 'restricted'), [], 'the app passes Pod Security restricted');
        assert.equal(spec.initContainers[0].name, 'kmcast-wait');
        assert.equal(spec.initContainers.length, 1);
        assert.equal(spec.containers.length, 1, 'no sidecar');
        assert.ok(!yaml.includes('NET_ADMIN') && !yaml.includes('Secret'));
        assert.match(yaml, /# Before applying: add ticker-kmcast\.|# Before applying: add a-kmcast\./);
        assert.match(yaml, /rollout restart daemonset\/kmcast-node/);
      } else if (mode === 'host-network') {
        assert.equal(spec.hostNetwork, true);
        assert.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet');
        assert.deepEqual(spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution, [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: o.name } } }]);
        for (const p of app.ports) assert.equal(p.hostPort, p.containerPort);
        assert.match(yaml, /# - isolation: /);
        assert.deepEqual(
          out.map((x) => x.kind),
          ['Deployment'],
        );
      } else {
        const nad = out.find((x) => x.kind === 'NetworkAttachmentDefinition')!;
        const config = JSON.parse(nad.spec.config as string) as Obj;
        assert.equal(config.type, o.multusType);
        assert.equal(config.mode, o.multusType === 'macvlan' ? 'bridge' : 'l2');
        assert.equal(config.master, o.master);
        assert.deepEqual(config.ipam.routes, [{ dst: '224.0.0.0/4' }]);
        assert.equal(config.ipam.range, o.subnet);
        assert.deepEqual(JSON.parse(dep.spec.template.metadata.annotations['k8s.v1.cni.cncf.io/networks'] as string), [{ name: nad.metadata.name, interface: 'net1' }]);
      }
    });
  }
}

test('generate refuses groups and options that cannot work, naming the flag', () => {
  const bad: [Partial<GenerateOptions>, RegExp][] = [
    [{ groups: [parseGroupSpec('224.0.0.9:5000')] }, /^--group: 224\.0\.0\.9 is in 224\.0\.0\.0\/24/],
    [{ groups: [parseGroupSpec('232.1.1.1:5000')] }, /^--group: 232\.1\.1\.1 is Source-Specific/],
    [{ groups: [] }, /^--group: at least one group/],
    [{ name: 'Ticker' }, /^--name: invalid name "Ticker"/],
    [{ subnet: '10.0.0.0' }, /^--subnet: invalid CIDR/],
    [{ master: 'eth 1' }, /^--master: invalid interface name/],
  ];
  for (const [v, re] of bad)
    assert.throws(
      () => generate({ ...base, ...v }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      re.source,
    );
});

test("a group lint warns about still generates, and the warning is lint's to give", () => {
  const { yaml } = generate({ ...base, groups: [parseGroupSpec('233.1.1.1:5000')] });
  assert.deepEqual(
    lintDocs(parseYamlDocs(yaml, 'g')).map((f) => f.rule),
    ['KMC103'],
  );
});
