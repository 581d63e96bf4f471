/**
 * `kmcast demo --mode node --ipv6` as a user runs it: exit 0, the baseline shows nothing crossing
 * nodes, every cell of the final matrices (the three IPv4 kinds and the two IPv6 ones, on a
 * dual-stack lab) is exactly the count sent, and nothing of the lab is left. The IPv4 kinds are
 * the same with or without --ipv6, so this run covers plain --mode node too.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { needRoot, testLabId } from './harness.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** The matrices printed between `from` and `to` (section headers), as rows of cells. */
function matrices(out: string, from: string, to: string): string[][][] {
  const part = out.slice(out.indexOf(from), out.indexOf(to));
  const blocks = part.split(/\n\s*from \\ to .*\n/).slice(1);
  return blocks.map((b) =>
    b
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^n\d+p\d+(\s+(-|\d+))+$/.test(l))
      .map((l) => l.split(/\s+/)),
  );
}

test('kmcast demo --mode node --ipv6: baseline deaf across nodes, then every cell exactly once, IPv4 and IPv6', async (t) => {
  if (!needRoot(t)) return;
  const id = testLabId('dn');
  const child = spawn(process.execPath, [MAIN, 'demo', '--mode', 'node', '--ipv6', '--id', id, '--nodes', 'calico,bridge', '--pods', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const t0 = Date.now();
  const code = await new Promise<number | null>((r) => child.once('close', r));
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(code, 0, `${out}\n${err}`);
  t.diagnostic(`demo --mode node took ${seconds.toFixed(1)} s`);
  assert.ok(seconds < 60, `well under a minute: ${seconds} s`);
  assert.match(out, /every one of the 4 pods' waits exited 0/);
  const base = out.slice(out.indexOf('[2/5]'), out.indexOf('[3/5]'));
  assert.equal((base.match(/: 0 datagrams crossed nodes/g) ?? []).length, 5, `baseline: no kind crosses nodes\n${base}`);
  const final = matrices(out, '[4/5]', '[5/5]');
  assert.equal(final.length, 5, `five final matrices (multicast, 224.0.0.251, broadcast, ff05::1:3, ff02::fb)\n${out}`);
  assert.match(out, /IPv6 multicast to ff05::1:3: 24 datagrams crossed nodes/);
  for (const m of final) {
    assert.equal(m.length, 4, 'one row per pod');
    for (const [r, row] of m.entries()) {
      for (const [c, cell] of row.slice(1).entries()) assert.equal(cell, r === c ? '-' : '3', `cell ${row[0]} -> column ${c}: ${row.join(' ')}`);
    }
  }
  assert.match(out, /Demo passed in/);
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.startsWith(`kmc${id}-`));
  assert.deepEqual(left, [], 'the demo tears its lab down');
});
