/**
 * `kmcast demo --mode gateway` as a user runs it: exit 0, the baseline shows nothing crossing
 * between the LAN and the pods, then every pod and both LAN hosts count exactly the datagrams
 * sent, and nothing of the lab (the LAN's namespaces included) is left.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { needRoot, testLabId } from './harness.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** `name count` pairs of the line that starts with `label`, within `part`. */
function counts(part: string, label: string): Map<string, number> {
  const line = part.split('\n').find((l) => l.trim().startsWith(label)) ?? '';
  return new Map([...line.slice(line.indexOf(label) + label.length).matchAll(/(\S+) (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

test('kmcast demo --mode gateway: nothing crosses before, exactly once both ways after', async (t) => {
  if (!needRoot(t)) return;
  const id = testLabId('dg');
  const child = spawn(process.execPath, [MAIN, 'demo', '--mode', 'gateway', '--id', id, '--nodes', 'calico,bridge', '--pods', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  assert.equal(code, 0, `${out}\n${err}`);
  const before = out.slice(out.indexOf('[2/4]'), out.indexOf('[3/4]'));
  const after = out.slice(out.indexOf('[4/4]'), out.indexOf('OK:'));
  const pods = ['n1p1', 'n1p2', 'n2p1', 'n2p2'];
  assert.deepEqual(
    [...counts(before, 'pods hearing the LAN feed:')],
    pods.map((p) => [p, 0]),
    before,
  );
  assert.deepEqual(
    [...counts(before, 'LAN hosts hearing the pod:')],
    [
      ['h1', 0],
      ['h2', 0],
    ],
    before,
  );
  assert.deepEqual(
    [...counts(after, 'pods hearing the LAN feed:')].filter(([k]) => pods.includes(k)),
    pods.map((p) => [p, 20]),
    after,
  );
  assert.deepEqual(
    [...counts(after, 'LAN hosts hearing the pod:')].filter(([k]) => k.startsWith('h')),
    [
      ['h1', 20],
      ['h2', 20],
    ],
    after,
  );
  assert.match(out, /gateway ACTIVE/);
  assert.match(out, /Demo passed in/);
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.startsWith(`kmc${id}-`));
  assert.deepEqual(left, [], 'the demo tears its lab down, the LAN too');
});

test('kmcast demo --mode gateway --ipv6: the IPv6 feed and stream cross exactly once, beside IPv4, and not before', async (t) => {
  if (!needRoot(t)) return;
  const id = testLabId('dg');
  const child = spawn(process.execPath, [MAIN, 'demo', '--mode', 'gateway', '--ipv6', '--id', id, '--nodes', 'calico,bridge', '--pods', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  assert.equal(code, 0, `${out}\n${err}`);
  const before = out.slice(out.indexOf('[2/4]'), out.indexOf('[3/4]'));
  const after = out.slice(out.indexOf('[4/4]'), out.indexOf('OK:'));
  const pods = ['n1p1', 'n2p1'];
  const feed6 = 'pods hearing the LAN IPv6 feed ff05::1:3:';
  const out6 = 'LAN hosts hearing the pod on ff05::2:2:';
  assert.deepEqual(
    [...counts(before, feed6)],
    pods.map((p) => [p, 0]),
    before,
  );
  assert.deepEqual(
    [...counts(before, out6)],
    [
      ['h1', 0],
      ['h2', 0],
    ],
    before,
  );
  assert.deepEqual(
    [...counts(after, feed6)].filter(([k]) => pods.includes(k)),
    pods.map((p) => [p, 20]),
    after,
  );
  assert.deepEqual(
    [...counts(after, out6)].filter(([k]) => k.startsWith('h')),
    [
      ['h1', 20],
      ['h2', 20],
    ],
    after,
  );
  assert.match(after, /\(source fd00:250::1: the gateway's IPv6 address, SNAT\)/);
  assert.match(out, /ff05::1:3 +in +20 /);
  assert.match(out, /Demo passed in/);
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.startsWith(`kmc${id}-`));
  assert.deepEqual(left, [], 'the demo tears its lab down');
});
