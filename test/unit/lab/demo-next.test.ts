/**
 * The demo ends with "where to look next": commands a newcomer copies from a fresh checkout,
 * where no `kmcast` is on PATH. `npx kmcast` is run for real (npx resolves the checkout's own bin
 * from package.json); each printed subcommand runs with --help so nothing is built or torn down,
 * and every flag it uses must be one the command knows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { nextSteps } from '../../../src/lab/demo.js';
import { ROOT } from '../manifests/fixtures.js';

test('every command the demo prints runs as printed in a checkout (npx kmcast, sudo only when sudo was used)', () => {
  const seen = new Set<string>();
  for (const keep of [false, true]) {
    for (const sudo of [false, true]) {
      const lines = nextSteps({ id: 'demo', keep, sudo });
      const commands = lines.map((l) => l.trim().split(/\s+#/)[0]!.trim()).filter((c) => /^(sudo )?npx /.test(c));
      assert.ok(commands.length >= 4, lines.join('\n'));
      for (const l of lines) {
        if (/\bkmcast\b/.test(l) && !/\.md\b/.test(l)) assert.match(l.trim(), sudo ? /^(sudo )?npx kmcast / : /^npx kmcast /, `printed as: ${l}`);
        if (/^\s*(sudo )?npx kmcast (lab|status|demo)\b/.test(l)) assert.equal(l.trim().startsWith('sudo '), sudo, `root commands carry sudo exactly when the demo ran under it: ${l}`);
      }
      for (const c of commands) {
        const argv = c.replace(/^sudo /, '').split(/\s+/);
        assert.deepEqual(argv.slice(0, 2), ['npx', 'kmcast']);
        const args = argv.slice(2);
        // The subcommand path: words before the first flag (lab exec, status, demo, inject).
        const sub = args.slice(0, args.findIndex((a) => a.startsWith('-')) === -1 ? args.length : args.findIndex((a) => a.startsWith('-')));
        const key = sub.slice(0, 2).filter((w) => /^[a-z]+$/.test(w) && ['lab', 'exec', 'down', 'matrix', 'status', 'demo', 'inject', 'up'].includes(w)).join(' ');
        if (seen.has(key)) continue;
        seen.add(key);
        // npx itself is slow (seconds on a loaded machine): it is run once below; the flags are
        // checked against the same bin run directly.
        const r = spawnSync(process.execPath, [`${ROOT}dist/src/cli/main.js`, ...key.split(' '), '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
        assert.equal(r.status, 0, `npx kmcast ${key} --help: ${r.stderr}`);
        for (const flag of args.filter((a) => /^--[a-z-]+$/.test(a))) assert.ok(r.stdout.includes(flag), `${c}: "${flag}" is not an option of kmcast ${key}`);
      }
    }
  }
  assert.ok(seen.size >= 4, [...seen].join(', '));
  // `npx kmcast` in a checkout: npx (npm >= 7) runs the package's own bin named in package.json,
  // with no install and no kmcast on PATH. --no-install: never fetch anything.
  const npx = spawnSync('npx', ['--no-install', 'kmcast', '--version'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(npx.status, 0, `npx --no-install kmcast --version: ${npx.stderr}`);
  assert.match(npx.stdout, /^\d+\.\d+\.\d+/);
});
