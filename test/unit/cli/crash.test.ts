import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const CRASH = fileURLToPath(new URL('../../../src/cli/crash.js', import.meta.url));

function run(body: string): { code: number | null; stderr: string } {
  const script = `import { installCrashHandlers } from ${JSON.stringify(CRASH)};\ninstallCrashHandlers();\n${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stderr: r.stderr };
}

test('an unhandled rejection is logged as one JSON line and exits 70 (internal error), not a silent crash', () => {
  const r = run("Promise.reject(new RangeError('encode STATE: too many groups'));\nsetTimeout(() => {}, 5000);");
  assert.equal(r.code, 70);
  const line = JSON.parse(r.stderr.trim().split('\n').at(-1)!) as { level: number; msg: string; err: { type: string; message: string } };
  assert.equal(line.level, 60);
  assert.match(line.msg, /unhandled promise rejection.*exiting with code 70/);
  assert.equal(line.err.type, 'RangeError');
  assert.equal(line.err.message, 'encode STATE: too many groups');
});

test('a rejection with a kmcast capability error keeps its exit code (3)', () => {
  const errors = JSON.stringify(fileURLToPath(new URL('../../../src/errors.js', import.meta.url)));
  const r = run(`const { CapabilityError } = await import(${errors});\nPromise.reject(new CapabilityError('no nft'));\nsetTimeout(() => {}, 5000);`);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /no nft/);
});
