/**
 * `kmcast generate --mode gateway` and deploy/gateway: the gateway DaemonSet is the node agent's
 * DaemonSet with a known, short list of differences (checked against deploy/node as kubectl builds
 * it), deploy/gateway builds to exactly what generate writes, and the node DaemonSet's change (the
 * patch command generate prints, and deploy/gateway's patch) keeps the node agent off gateway nodes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError } from '../../../src/errors.js';
import { GATEWAY_CONFIGMAP, GATEWAY_DAEMONSET, GATEWAY_KEYS, GATEWAY_NODE_LABEL, generateGateway, nodeAffinityPatch, nodePatchCommand } from '../../../src/manifests/gateway-generate.js';
import type { GatewayGenerateOptions } from '../../../src/manifests/gateway-generate.js';
import { lintDocs } from '../../../src/manifests/lint.js';
import { NODE_DAEMONSET, NODE_NAMESPACE } from '../../../src/manifests/node-inject.js';
import { DEFAULT_IMAGE } from '../../../src/manifests/sidecar.js';
import { parseYamlDocs } from '../../../src/manifests/yamlio.js';
import { ROOT } from './fixtures.js';
import { validateK8s } from './k8s-schema.js';
import { kustomizeDir, kustomizeText, requireKubectl } from './kubectl.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const base: GatewayGenerateOptions = { interface: 'eth1', groups: ['239.10.0.0/16=in'], snat: 'on', minTtl: 1, rate: 10000, image: DEFAULT_IMAGE };
const objs = (yaml: string): Obj[] => parseYamlDocs(yaml, 'gw.yaml').map((d) => d.doc.toJS() as Obj);
const find = (list: Obj[], kind: string, name: string): Obj => {
  const o = list.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} in ${list.map((x) => `${x.kind}/${x.metadata.name as string}`).join(', ')}`);
  return o;
};

const nodeBuilt = kustomizeDir(`${ROOT}deploy/node`, 'deploy/node') as Obj[];
const gatewayBuilt = kustomizeDir(`${ROOT}deploy/gateway`, 'deploy/gateway') as Obj[];

const variants: Partial<GatewayGenerateOptions>[] = [
  {},
  { groups: ['224.0.0.251=both', '239.255.255.250=both'], service: 'ha-kmcast.home.svc.cluster.local', snat: 'off' },
  { interface: 'ens4.100', groups: ['239.10.0.0/16=in,239.20.1.1=out'], minTtl: 2, rate: 0, image: 'example/kmcast:dev' },
  { groups: ['ff05::1:0/112=in,ff02::fb=in,ff05::2:2=both,239.20.1.1=out'] },
];

for (const [i, v] of variants.entries()) {
  test(`generate --mode gateway (variant ${i}): kubectl reads it, schema-valid, lint-clean, the settings as strings`, () => {
    const o = { ...base, ...v };
    const { yaml, notes } = generateGateway(o);
    const out = objs(yaml);
    assert.equal(kustomizeText(yaml, `generate --mode gateway (variant ${i})`).length, out.length, 'kubectl kustomize reads every object');
    assert.deepEqual(
      out.map((x) => `${x.kind as string}/${x.metadata.name as string}`),
      [`ConfigMap/${GATEWAY_CONFIGMAP}`, `DaemonSet/${GATEWAY_DAEMONSET}`],
    );
    for (const x of out) {
      assert.ok(validateK8s(x), `${x.kind as string} has a schema`);
      assert.equal(x.metadata.namespace, NODE_NAMESPACE);
    }
    assert.deepEqual(lintDocs(parseYamlDocs(yaml, 'gw.yaml')), []);
    assert.ok(yaml.startsWith('---\n# kmcast generate --mode gateway: '), 'starts with the explaining comment');
    const cm = out[0]!;
    assert.equal(cm.data.interface, o.interface);
    assert.equal(cm.data.groups, o.groups.join(','), "the entries in the parser's normal form (these are already normal)");
    assert.equal(cm.data.snat, o.snat);
    assert.equal(cm.data['min-ttl'], String(o.minTtl));
    assert.equal(cm.data.rate, String(o.rate));
    assert.equal(cm.data.service, o.service);
    // kubectl apply reads YAML 1.1, where a plain on/off is a boolean: every value must stay a string.
    for (const d of parseYamlDocs(yaml, 'gw.yaml')) {
      const js = parse(String(d.doc), { version: '1.1' }) as Obj;
      if (js.kind === 'ConfigMap') for (const [k, val] of Object.entries(js.data as Obj)) assert.equal(typeof val, 'string', `data.${k} read as YAML 1.1`);
    }
    // Every key the DaemonSet reads is in the ConfigMap, or optional.
    const c = out[1]!.spec.template.spec.containers[0];
    assert.equal(c.image, o.image);
    for (const e of (c.env as Obj[]).filter((x) => x.valueFrom?.configMapKeyRef?.name === GATEWAY_CONFIGMAP)) {
      const ref = e.valueFrom.configMapKeyRef;
      assert.equal(GATEWAY_KEYS[ref.key as keyof typeof GATEWAY_KEYS], e.name);
      assert.ok(ref.key in cm.data || ref.optional === true, `${e.name as string}: key ${ref.key as string}`);
    }
    assert.ok(
      notes.some((n) => n.includes(nodePatchCommand())),
      'the node DaemonSet change is on stderr',
    );
    assert.ok(yaml.includes(nodePatchCommand()) && yaml.includes(`kubectl label node <node> ${GATEWAY_NODE_LABEL}=true`));
  });
}

test('YAML 1.1 reads a plain on as a boolean: the quoting above is needed', () => {
  assert.equal((parse('snat: on', { version: '1.1' }) as Obj).snat, true);
  assert.equal((parse('snat: "on"', { version: '1.1' }) as Obj).snat, 'on');
});

test("the gateway DaemonSet is deploy/node's DaemonSet with only the gateway's differences", () => {
  const node = structuredClone(find(nodeBuilt, 'DaemonSet', NODE_DAEMONSET));
  const gw = find(objs(generateGateway(base).yaml), 'DaemonSet', GATEWAY_DAEMONSET);
  // What the gateway changes, applied to the node agent's DaemonSet, gives the gateway's.
  node.metadata.name = GATEWAY_DAEMONSET;
  node.spec.selector.matchLabels['kmcast.io/agent'] = 'gateway';
  node.spec.template.metadata.labels['kmcast.io/agent'] = 'gateway';
  node.spec.template.spec.nodeSelector[GATEWAY_NODE_LABEL] = 'true';
  const c = node.spec.template.spec.containers[0];
  c.name = 'gateway';
  assert.equal(c.args[0], 'node');
  c.args[0] = 'gateway';
  c.env.push(
    ...Object.entries(GATEWAY_KEYS).map(([key, name]) => ({
      name,
      valueFrom: { configMapKeyRef: { name: GATEWAY_CONFIGMAP, key, ...(key === 'interface' || key === 'groups' ? {} : { optional: true }) } },
    })),
  );
  assert.deepEqual(gw, node);
  // The peers Service selects the gateway's pods too, so the node agents find it.
  const svc = find(nodeBuilt, 'Service', 'kmcast-node');
  for (const [k, val] of Object.entries(svc.spec.selector as Record<string, string>)) assert.equal(gw.spec.template.metadata.labels[k], val);
  // The two DaemonSets' pods are told apart: the node DaemonSet's pods do not match the gateway's selector.
  const nodePodLabels = find(nodeBuilt, 'DaemonSet', NODE_DAEMONSET).spec.template.metadata.labels as Record<string, string>;
  assert.ok(Object.entries(gw.spec.selector.matchLabels as Record<string, string>).some(([k, val]) => nodePodLabels[k] !== val));
});

test('deploy/gateway builds to deploy/node, the NotIn affinity on kmcast-node, and what generate writes', () => {
  assert.deepEqual(gatewayBuilt.map((o) => `${o.kind as string}/${o.metadata.name as string}`).sort(), [
    'ConfigMap/kmcast-gateway',
    'ConfigMap/kmcast-node',
    'DaemonSet/kmcast-gateway',
    'DaemonSet/kmcast-node',
    'Namespace/kmcast-node',
    'Service/kmcast-node',
    'ServiceAccount/kmcast-node',
  ]);
  for (const o of gatewayBuilt) assert.ok(validateK8s(o), `${o.kind as string} has a schema`);
  const generated = objs(generateGateway(base).yaml);
  assert.deepEqual(find(gatewayBuilt, 'DaemonSet', GATEWAY_DAEMONSET), find(generated, 'DaemonSet', GATEWAY_DAEMONSET));
  const cm = find(gatewayBuilt, 'ConfigMap', GATEWAY_CONFIGMAP);
  assert.deepEqual(cm.data, { interface: '', groups: '' }, 'no values shipped: nothing crosses until configured');
  assert.deepEqual(cm.metadata, { ...find(generated, 'ConfigMap', GATEWAY_CONFIGMAP).metadata });
  // Everything from deploy/node is unchanged, except the node DaemonSet's affinity.
  for (const o of nodeBuilt) {
    const g = find(gatewayBuilt, o.kind as string, o.metadata.name as string);
    if (o.kind !== 'DaemonSet') assert.deepEqual(g, o);
  }
  const node = structuredClone(find(nodeBuilt, 'DaemonSet', NODE_DAEMONSET));
  assert.equal(node.spec.template.spec.affinity, undefined, 'deploy/node itself has no affinity');
  node.spec.template.spec.affinity = (nodeAffinityPatch().spec as Obj).template.spec.affinity;
  assert.deepEqual(find(gatewayBuilt, 'DaemonSet', NODE_DAEMONSET), node);
});

test("the patch command generate prints, applied by kubectl to deploy/node's DaemonSet, gives deploy/gateway's", (t) => {
  if (!requireKubectl(t)) return;
  const m = /^kubectl -n (\S+) patch daemonset (\S+) --type strategic -p '([^']+)'$/.exec(nodePatchCommand());
  assert.ok(m, nodePatchCommand());
  assert.deepEqual([m[1], m[2]], [NODE_NAMESPACE, NODE_DAEMONSET]);
  const dir = mkdtempSync(join(tmpdir(), 'kmc-patch-'));
  try {
    const file = join(dir, 'ds.json');
    writeFileSync(file, JSON.stringify(find(nodeBuilt, 'DaemonSet', NODE_DAEMONSET)));
    const patched = JSON.parse(execFileSync('kubectl', ['patch', '--local', '-f', file, '--type', 'strategic', '-p', m[3]!, '-o', 'json'], { encoding: 'utf8' })) as Obj;
    assert.deepEqual(patched, find(gatewayBuilt, 'DaemonSet', NODE_DAEMONSET));
    // Baseline: without the patch the two differ.
    assert.notDeepEqual(find(nodeBuilt, 'DaemonSet', NODE_DAEMONSET), find(gatewayBuilt, 'DaemonSet', NODE_DAEMONSET));
    // The affinity excludes the labelled nodes only: a NotIn term matches nodes without the label.
    const terms = patched.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms as Obj[];
    assert.deepEqual(terms, [{ matchExpressions: [{ key: GATEWAY_NODE_LABEL, operator: 'NotIn', values: ['true'] }] }]);
    const gw = find(gatewayBuilt, 'DaemonSet', GATEWAY_DAEMONSET);
    assert.equal(gw.spec.template.spec.nodeSelector[GATEWAY_NODE_LABEL], 'true', 'and the gateway runs exactly there');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate --mode gateway refuses settings the agent would refuse, naming the flag', () => {
  const bad: [Partial<GatewayGenerateOptions>, RegExp][] = [
    [{ interface: '' }, /^--gateway-interface: invalid interface name ""/],
    [{ interface: 'a-very-long-interface' }, /^--gateway-interface: invalid/],
    [{ interface: 'eth 1' }, /^--gateway-interface: invalid/],
    [{ groups: [] }, /^--gateway-group: at least one entry/],
    [{ groups: [','] }, /^--gateway-group: at least one entry/],
    [{ groups: ['239.10.0.0/16=out'] }, /^--gateway-group .*out needs single groups/],
    [{ groups: ['239.1.1.1'] }, /^--gateway-group .*is not GROUP\[\/LEN\]=in\|out\|both/],
    [{ groups: ['10.1.1.1=in'] }, /^--gateway-group .*not a multicast group/],
    [{ groups: ['239.10.0.0/16=in', '239.10.1.1=out'] }, /^--gateway-group .*overlaps/],
    [{ groups: ['ff02::fb=both'] }, /^--gateway-group .*link-local IPv6 groups cross inbound only/],
    [{ groups: ['ff01::1=in'] }, /^--gateway-group .*interface-local/],
    [{ groups: ['ff02::1:ff00:1=in'] }, /^--gateway-group .*Neighbor Discovery or MLD/],
    [{ service: 'Bad Name' }, /^--gateway-service: invalid domain/],
    [{ service: 'ticker-kmcast.trading.svc.cluster.local=4243' }, /^--gateway-service: invalid domain/],
    [{ snat: 'yes' as 'on' }, /^--gateway-snat: "yes" is not on or off/],
    [{ minTtl: 0 }, /^--gateway-min-ttl: invalid value "0"/],
    [{ minTtl: 256 }, /^--gateway-min-ttl: invalid value "256"/],
    [{ rate: -1 }, /^--gateway-rate: invalid value "-1"/],
    [{ rate: 1.5 }, /^--gateway-rate: invalid value "1.5"/],
  ];
  for (const [v, re] of bad)
    assert.throws(
      () => generateGateway({ ...base, ...v }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      re.source,
    );
  // The edges still accepted.
  for (const v of [{ minTtl: 255 }, { rate: 0 }, { interface: 'a'.repeat(15) }, { groups: ['224.0.0.251/32=both'] }]) assert.doesNotThrow(() => generateGateway({ ...base, ...v }), JSON.stringify(v));
  assert.equal(objs(generateGateway({ ...base, groups: ['224.0.0.251/32=both'] }).yaml)[0]!.data.groups, '224.0.0.251=both', 'a /32 is written as the group');
});
