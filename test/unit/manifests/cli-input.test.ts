/**
 * Bad input and bad flags reach the manifest commands (inject, generate, lint) as a user would
 * give them: each must end quickly with exit 2, one line naming the file or flag, and no stack.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../../src/errors.js';
import { MAX_INPUT_BYTES, parseYamlDocs, readYamlFile } from '../../../src/manifests/yamlio.js';
import { ROOT } from './fixtures.js';

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function cli(args: string[], input?: string | number): Run {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [`${ROOT}dist/src/cli/main.js`, ...args], {
    encoding: 'utf8',
    cwd: ROOT,
    timeout: 20_000,
    maxBuffer: 64 * 1024 * 1024,
    ...(typeof input === 'number' ? { stdio: [input, 'pipe', 'pipe'] } : { input: input ?? '' }),
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

/** Exit 2, one `kmcast: ...` line matching `re`, no stack trace, nothing on stdout. */
function assertUserError(r: Run, re: RegExp, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${r.signal} after ${r.ms} ms (hung or grew without bound)`);
  assert.equal(r.status, 2, `${what}: exit ${r.status}\n${r.stderr}`);
  assert.match(r.stderr, /^kmcast: [^\n]+\n$/, `${what}: one line, no stack:\n${r.stderr}`);
  assert.match(r.stderr, re, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

let dir: string;
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kmc-input-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('only regular files and stdin are read: /dev/zero and a FIFO end at once with exit 2', () => {
  assertUserError(cli(['inject', '-f', '/dev/zero']), /--file: read \/dev\/zero: not a regular file/, 'inject -f /dev/zero');
  const fifo = join(dir, 'pipe.yaml');
  execFileSync('mkfifo', [fifo]);
  assertUserError(cli(['lint', fifo]), /read .*pipe\.yaml: not a regular file/, 'lint FIFO');
  assertUserError(cli(['lint', dir]), /^kmcast: /, 'lint of a directory holding a FIFO');
  assertUserError(cli(['inject', '-f', dir]), /--file: read .*: not a regular file \(a directory\)/, 'inject -f DIR');
  assert.throws(
    () => readYamlFile('/dev/zero'),
    (e: unknown) => e instanceof InputError && /not a regular file/.test(e.message),
  );
});

test('input beyond the size limit is refused with exit 2, from a file and from stdin', () => {
  const big = join(dir, 'big.yaml');
  writeFileSync(big, `# ${'x'.repeat(MAX_INPUT_BYTES)}\n`);
  assertUserError(cli(['inject', '-f', big]), new RegExp(`read .*big\\.yaml: larger than ${MAX_INPUT_BYTES / 1024 / 1024} MiB`), 'inject big file');
  assertUserError(cli(['lint', big]), /larger than/, 'lint big file');
  // stdin that never ends: /dev/zero as fd 0
  const fd = openSync('/dev/zero', 'r');
  try {
    assertUserError(cli(['inject', '-f', '-'], fd), /read <stdin>: larger than/, 'inject -f - < /dev/zero');
  } finally {
    closeSync(fd);
  }
  assert.throws(() => readYamlFile('-', () => 'x'.repeat(MAX_INPUT_BYTES + 1)), /read <stdin>: larger than/);
});

test('a YAML alias bomb gives exit 2 naming the file, not a stack trace', () => {
  const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 9; i++) {
    const p = String.fromCharCode(97 + i - 1);
    const c = String.fromCharCode(97 + i);
    levels.push(`${c}: &${c} [${Array(9).fill(`*${p}`).join(',')}]`);
  }
  const bomb = join(dir, 'bomb.yaml');
  writeFileSync(bomb, `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n${levels.join('\n')}\n`);
  assertUserError(cli(['inject', '-f', bomb]), /bomb\.yaml:\d+: parse YAML: .*alias/, 'inject alias bomb');
  assertUserError(cli(['lint', bomb]), /bomb\.yaml:\d+: parse YAML: .*alias/, 'lint alias bomb');
  assert.throws(
    () => parseYamlDocs(`${levels.join('\n')}\n`, 'b.yaml'),
    (e: unknown) => e instanceof InputError && /^b\.yaml:\d+: parse YAML/.test(e.message),
  );
  // Ordinary anchors still work.
  assert.equal(parseYamlDocs('a: &x {k: v}\nb: *x\n', 'ok.yaml').length, 1);
});

const GEN = ['generate', '--name', 'ticker', '--image', 'example/ticker:2', '--group', '239.1.1.1:5000'];

test('generate and inject refuse invalid flag values with exit 2 naming the flag', () => {
  const app = join(dir, 'app.yaml');
  writeFileSync(app, 'apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: web, image: nginx}]}\n');
  const cases: [string[], RegExp][] = [
    [[...GEN, '--replicas', '99999999999999999999'], /--replicas: invalid value/],
    [[...GEN, '--replicas', '0'], /--replicas: invalid value/],
    [[...GEN, '--namespace', 'Bad_NS!'], /--namespace: invalid namespace "Bad_NS!"/],
    [['generate', '--name', 'ticker', '--image', '', '--group', '239.1.1.1:5000'], /--image: /],
    [['generate', '--name', 'ticker', '--image', 'a b', '--group', '239.1.1.1:5000'], /--image: /],
    [[...GEN, '--agent-image', ''], /--agent-image: /],
    [[...GEN, '--cluster-domain', 'x y;z'], /--cluster-domain: invalid domain "x y;z"/],
    [['inject', '-f', app, '--cluster-domain', 'x y;z'], /--cluster-domain: /],
    [['inject', '-f', app, '--image', ''], /--image: /],
    [['inject', '-f', app, '--name', 'BAD_NAME'], /--name: invalid name "BAD_NAME"/],
  ];
  for (const [args, re] of cases) assertUserError(cli(args), re, args.join(' '));
  // The values still accepted.
  for (const args of [
    [...GEN, '--replicas', '2147483647', '--namespace', 'trading-1', '--cluster-domain', 'corp.example'],
    ['inject', '-f', app, '--name', 'web-1'],
  ]) {
    const r = cli(args);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  }
});

const GW = ['generate', '--mode', 'gateway', '--gateway-interface', 'eth1', '--gateway-group', '239.10.0.0/16=in'];

test('generate --mode gateway: app flags refused, gateway flags refused elsewhere, each with exit 2 naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['generate', '--mode', 'gateway', '--gateway-group', '239.10.0.0/16=in'], /^kmcast: --gateway-interface: required for --mode gateway/],
    [['generate', '--mode', 'gateway', '--gateway-interface', 'eth1'], /^kmcast: --gateway-group: at least one entry/],
    [[...GW, '--gateway-group', '239.20.0.0/16=out'], /^kmcast: --gateway-group .*out needs single groups/],
    [[...GW, '--image', 'example/ticker:2'], /^kmcast: --image: not for --mode gateway/],
    [[...GW, '--group', '239.1.1.1:5000'], /^kmcast: --group: not for --mode gateway/],
    [[...GW, '--replicas', '2'], /^kmcast: --replicas: not for --mode gateway/],
    [[...GW, '--legacy'], /^kmcast: --legacy: not for --mode gateway/],
    [[...GW, '--name', 'ticker'], /^kmcast: --name: needs --namespace/],
    [[...GW, '--namespace', 'trading'], /^kmcast: --namespace: in --mode gateway it names the domain together with --name/],
    [[...GW, '--name', 'ticker', '--namespace', 'trading', '--gateway-service', 'x.trading.svc.cluster.local'], /^kmcast: --gateway-service: give it or --name/],
    [[...GW, '--gateway-min-ttl', '0'], /^kmcast: --gateway-min-ttl: invalid value "0"/],
    [[...GW, '--gateway-rate', '-5'], /--gateway-rate/],
    [[...GEN, '--gateway-interface', 'eth1'], /^kmcast: --gateway-interface: only for --mode gateway/],
    [[...GEN, '--gateway-snat', 'off'], /^kmcast: --gateway-snat: only for --mode gateway/],
    [['generate', '--image', 'example/ticker:2', '--group', '239.1.1.1:5000'], /^kmcast: --name: required/],
    [['generate', '--name', 'ticker', '--group', '239.1.1.1:5000'], /^kmcast: --image: required/],
    [['generate', '--name', 'ticker', '--image', 'example/ticker:2'], /^kmcast: --group: required/],
  ];
  for (const [args, re] of cases) assertUserError(cli(args), re, args.join(' '));
  // A choice outside on|off is commander's error, as for --mode: exit 2 naming the flag and the choices.
  const snat = cli([...GW, '--gateway-snat', 'maybe']);
  assert.equal(snat.status, 2);
  assert.match(snat.stderr, /'--gateway-snat <on\|off>' argument 'maybe' is invalid\. Allowed choices are on, off/);
  // Accepted: the domain from --name and --namespace (as inject --mode node names it), the agent image.
  const r = cli([...GW, '--gateway-group', '224.0.0.251=both', '--name', 'ticker', '--namespace', 'trading', '--agent-image', 'example/kmcast:dev', '--gateway-snat', 'off']);
  assert.equal(r.status, 0, r.stderr);
  const [cm, ds] = parseYamlDocs(r.stdout, 'gw').map((d) => d.doc.toJS() as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual(cm!.data, { interface: 'eth1', groups: '239.10.0.0/16=in,224.0.0.251=both', service: 'ticker-kmcast.trading.svc.cluster.local', snat: 'off', 'min-ttl': '1', rate: '10000' });
  assert.equal(ds!.spec.template.spec.containers[0].image, 'example/kmcast:dev');
  assert.match(r.stderr, /kmcast generate: gateway: patch the kmcast-node DaemonSet/);
  const plain = cli(GW);
  assert.equal(plain.status, 0, plain.stderr);
  assert.equal((parseYamlDocs(plain.stdout, 'gw')[0]!.doc.toJS() as { data: Record<string, string> }).data.service, undefined);
  assert.match(plain.stderr, /no --gateway-service/);
  // The app modes still work as before.
  assert.equal(cli(GEN).status, 0);
});
