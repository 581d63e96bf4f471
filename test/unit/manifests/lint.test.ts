import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { InputError } from '../../../src/errors.js';
import { formatFindings, lintDocs } from '../../../src/manifests/lint.js';
import type { Finding } from '../../../src/manifests/lint.js';
import { RULES, RULE_LIST } from '../../../src/manifests/lint-rules.js';
import { parseYamlDocs } from '../../../src/manifests/yamlio.js';
import { FIXTURES, INJECT_DIR, ROOT } from './fixtures.js';

const LINT_DIR = `${FIXTURES}lint/`;
const files = readdirSync(LINT_DIR).sort();
const lintFile = (f: string): Finding[] => lintDocs(parseYamlDocs(readFileSync(LINT_DIR + f, 'utf8'), f));
const lintText = (text: string, file = 'in.yaml'): Finding[] => lintDocs(parseYamlDocs(text, file));

test('rule ids are unique and every rule has why and fix', () => {
  assert.equal(new Set(RULE_LIST.map((r) => r.id)).size, RULE_LIST.length);
  assert.equal(new Set(RULE_LIST.map((r) => r.name)).size, RULE_LIST.length);
  for (const r of RULE_LIST) assert.ok(r.why.length > 20 && r.fix.length > 10, r.id);
});

for (const rule of RULE_LIST) {
  test(`${rule.id} ${rule.name}: the bad fixture triggers it, the good one does not`, () => {
    const bad = files.find((f) => f.startsWith(`${rule.id}-bad.`));
    const good = files.find((f) => f.startsWith(`${rule.id}-good.`));
    assert.ok(bad && good, `fixtures for ${rule.id}`);
    const hits = lintFile(bad).filter((f) => f.rule === rule.id);
    assert.ok(hits.length >= 1, `${bad} must trigger ${rule.id}`);
    for (const h of hits) {
      assert.equal(h.severity, rule.severity);
      assert.equal(h.file, bad);
      assert.ok(h.line > 1 && h.object.length > 0 && h.path.length > 0 && h.message.length > 0);
      assert.equal(h.fix, rule.fix);
    }
    assert.deepEqual(
      lintFile(good).filter((f) => f.rule === rule.id),
      [],
      `${good} must not trigger ${rule.id}`,
    );
  });
}

test('the common wrong advice yields findings with fixes', () => {
  const findings = lintFile('wrong-advice.yaml');
  const byRule = new Map(findings.map((f) => [f.rule, f]));
  assert.match(byRule.get('KMC201')!.message, /EnableMulticast/);
  assert.equal(byRule.get('KMC201')!.object, 'ConfigMap/kube-flannel/kube-flannel-cfg');
  assert.match(byRule.get('KMC103')!.message, /233\.1\.1\.1/);
  assert.equal(byRule.get('KMC301')!.object, 'Service/market/quotes');
  assert.equal(byRule.get('KMC303')!.object, 'NetworkPolicy/market/quotes-feed');
  for (const f of findings) assert.ok(f.fix.length > 0);
  assert.deepEqual([...byRule.keys()].sort(), ['KMC103', 'KMC201', 'KMC301', 'KMC303']);
});

test('findings point at the line of the offending field', () => {
  const [f] = lintText('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: x\n  MCAST_GROUP: 10.0.0.1\n');
  assert.equal(f!.rule, 'KMC101');
  assert.equal(f!.line, 7);
  assert.equal(f!.path, 'data.MCAST_GROUP');
});

test('a group setting that is not an address at all is reported', () => {
  const f = lintText('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  MCAST_GROUP: "239.1.1:5000"\n');
  assert.deepEqual(
    f.map((x) => [x.rule, x.message]),
    [['KMC101', '"239.1.1" is not an IPv4 address']],
  );
});

test('interface and source addresses next to a group are not groups', () => {
  const text =
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: b\n    env:\n    - {name: MCAST_IFACE_ADDR, value: 10.0.0.5}\n    - {name: MCAST_GROUP, value: "239.2.2.2"}\n    - {name: MULTICAST_TTL, value: "4"}\n';
  assert.deepEqual(lintText(text), []);
});

test('the injected fixtures and the generated objects of inject are clean', () => {
  for (const f of readdirSync(INJECT_DIR)) {
    const findings = lintDocs(parseYamlDocs(readFileSync(INJECT_DIR + f, 'utf8'), f)).filter((x) => x.severity === 'error' && x.rule !== 'KMC305');
    assert.deepEqual(findings, [], f);
  }
});

test('bad CNI JSON is an input error with file and line', () => {
  const nad = 'apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {name: n}\nspec:\n  config: \'{"type": "macvlan",}\'\n';
  assert.throws(
    () => lintText(nad, 'nad.yaml'),
    (e: unknown) => e instanceof InputError && /^nad\.yaml:5: parse CNI configuration in spec\.config: /.test(e.message),
  );
  assert.throws(
    () => lintText('{"Network": "10.0.0.0/8",, }', 'net-conf.json'),
    (e: unknown) => e instanceof InputError && /^net-conf\.json:1: parse YAML/.test(e.message),
  );
  assert.throws(
    () => lintText('kind: Pod\nmetadata: {name: x}\n', 'p.yaml'),
    (e: unknown) => e instanceof InputError && /^p\.yaml:1: read object: missing apiVersion/.test(e.message),
  );
});

test('human output has headline, why, fix and a summary', () => {
  const out = formatFindings(lintFile('KMC102-bad.yaml'), 1);
  assert.match(out, /^KMC102-bad\.yaml:17: error KMC102 group-link-local: Deployment\/feed spec\.template\.spec\.containers\[0\]\.env\[0\]\.value\n {2}224\.0\.0\.77:5000/);
  assert.match(out, /\n {2}why: .+\n {2}fix: .+\n1 error\(s\), 0 warning\(s\), 0 info in 1 file\(s\)\n$/);
});

const cli = (...args: string[]): { status: number | null; stdout: string; stderr: string } => {
  const r = spawnSync(process.execPath, [`${ROOT}dist/src/cli/main.js`, ...args], { encoding: 'utf8', cwd: ROOT });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

test('kmcast lint exit codes: 1 with errors, 0 with only warnings, 2 on bad input; --json', () => {
  assert.equal(cli('lint', `${LINT_DIR}KMC102-bad.yaml`).status, 1);
  assert.equal(cli('lint', `${LINT_DIR}KMC103-bad.yaml`).status, 0);
  const json = cli('lint', '--json', `${LINT_DIR}wrong-advice.yaml`);
  assert.equal(json.status, 1);
  const parsed = JSON.parse(json.stdout) as { findings: Finding[]; summary: { errors: number; warnings: number; files: number } };
  assert.deepEqual(parsed.summary, { errors: 1, warnings: 3, info: 0, files: 1 });
  const dir = cli('lint', LINT_DIR);
  assert.equal(dir.status, 1);
  assert.match(dir.stdout, /in \d+ file\(s\)\n$/);
  const bad = cli('lint', `${FIXTURES}bad/invalid.yaml`);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^kmcast: .*invalid\.yaml:2: parse YAML: .+\n$/);
  assert.equal(cli('lint', '/nonexistent-kmc').status, 2);
});

test('kmcast inject exit 2 on bad input with file:line on one line; YAML on stdout, report on stderr', () => {
  const bad = cli('inject', '-f', `${FIXTURES}bad/unknown-kind.yaml`);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^kmcast: .*unknown-kind\.yaml:6: unknown kind "Deploymnet" in apps\/v1; .+\n$/);
  assert.equal(bad.stdout, '');
  const ok = cli('inject', '-f', `${INJECT_DIR}04-job.yaml`);
  assert.equal(ok.status, 0);
  assert.ok(ok.stdout.startsWith('---\napiVersion: batch/v1\nkind: Job'));
  assert.ok(!ok.stdout.includes('kmcast inject:'));
  assert.match(ok.stderr, /^kmcast inject: Job\/sync-once: /m);
  assert.equal(cli('inject', '-f', `${INJECT_DIR}04-job.yaml`, '--vni', 'x').status, 2);
});

test('docs/kubernetes.md lists every rule with its name and severity', () => {
  const doc = readFileSync(`${ROOT}docs/kubernetes.md`, 'utf8');
  for (const r of RULE_LIST) assert.ok(doc.includes(`| ${r.id} | ${r.name} | ${r.severity} |`), r.id);
});

test('lint time grows linearly with the number of groups (10k groups, with and without findings)', () => {
  const podWith = (n: number, first: number): string => {
    const env = Array.from({ length: n }, (_, i) => ({ name: `GROUP_${i}`, value: `${first}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:${5000 + (i % 7)}` }));
    return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'b', env }] } });
  };
  // 239/8: no findings; 230/8: one finding per group (globally scoped).
  for (const [first, perGroup] of [
    [239, 0],
    [230, 1],
  ] as const) {
    const time = (n: number): number => {
      const docs = parseYamlDocs(podWith(n, first), 'many.json');
      let best = Infinity;
      for (let k = 0; k < 2; k++) {
        const t0 = process.hrtime.bigint();
        const findings = lintDocs(docs);
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
        assert.equal(findings.length, n * perGroup);
      }
      return best;
    };
    const small = time(2500);
    const large = time(10_000);
    // Linear: about 4x for 4x the groups; quadratic would be about 16x.
    assert.ok(large / small < 8, `${first}/8: 2,500 groups ${small.toFixed(0)} ms, 10,000 groups ${large.toFixed(0)} ms (x${(large / small).toFixed(1)})`);
  }
});

test('a ConfigMap of 20,000 groups lints in linear time, well under 10 s', () => {
  // One key per group, as a values-style ConfigMap has them; 230/8 gives every key a finding, so
  // each finding's line is looked up too.
  const configMap = (n: number): string =>
    [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: groups',
      'data:',
      ...Array.from({ length: n }, (_, i) => `  GROUP_${i}: "230.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}"`),
      '',
    ].join('\n');
  const time = (n: number): number => {
    const docs = parseYamlDocs(configMap(n), 'groups.yaml');
    let best = Infinity;
    for (let k = 0; k < 2; k++) {
      const t0 = process.hrtime.bigint();
      const findings = lintDocs(docs);
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
      assert.equal(findings.filter((f) => f.rule === RULES.groupNotAdminScoped.id).length, n);
      assert.equal(findings.find((f) => f.path === 'data.GROUP_4999')?.line, 5005, 'the line of the 5,000th key');
    }
    return best;
  };
  const small = time(5000);
  const large = time(20_000);
  assert.ok(large < 10_000, `20,000 groups took ${large.toFixed(0)} ms`);
  assert.ok(large / small < 8, `5,000 groups ${small.toFixed(0)} ms, 20,000 groups ${large.toFixed(0)} ms (x${(large / small).toFixed(1)}; linear is about 4)`);
});

test('IPv6 groups: found in settings as [address]:port or bare, never a MAC or a time; each rule its finding', () => {
  const env = (pairs: [string, string][]): string => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: ns\ndata:\n${pairs.map(([k, v]) => `  ${k}: "${v}"`).join('\n')}\n`;
  const rules = (pairs: [string, string][]): string[] =>
    lintText(env(pairs))
      .map((f) => `${f.rule} ${f.message}`)
      .sort();
  assert.deepEqual(rules([['MCAST_GROUP', '[FF05:0::1:3]:5000']]), [], 'site-local: fine, spelled any way');
  assert.deepEqual(rules([['MCAST_GROUP', 'fd00::5']]), ['KMC101 fd00::5 is used as a group but is not an IPv6 multicast address (ff00::/8)']);
  assert.deepEqual(
    rules([
      ['GROUP_A', 'ff02::1:ff00:1'],
      ['GROUP_B', 'ff02::16'],
    ]).map((r) => r.split(' ')[0]),
    ['KMC108', 'KMC108'],
  );
  assert.deepEqual(rules([['MCAST_GROUP', 'ff0f::1']]), ['KMC107 ff0f::1 is of a reserved scope (0 or 15)']);
  assert.deepEqual(
    rules([
      ['MCAST_GROUP', 'ff02::fb'],
      ['OTHER', 'ff02::c'],
    ]),
    [],
    'link-local application groups are fine (they flood)',
  );
  assert.deepEqual(
    rules([
      ['GROUP_A', 'ff05::1:3'],
      ['GROUP_B', 'ff08::1:3'],
    ]),
    ['KMC106 ff08::1:3 and ff05::1:3 (ConfigMap/ns/c) share the Ethernet MAC 33:33:00:01:00:03 in namespace ns'],
  );
  assert.deepEqual(
    rules([
      ['MAC', '01:00:5e:00:00:01'],
      ['STARTS', '12:30:45'],
      ['NOTE', 'see ff05::1:3 for the feed'],
    ]),
    [],
    'MACs and times are no addresses; an unkeyed group in prose is collected but fine',
  );
  assert.deepEqual(rules([['NOTE', 'feed on ff01::1']]), ['KMC107 ff01::1 is of interface-local scope: it never leaves the pod'], 'a multicast address in any setting is checked');
});
