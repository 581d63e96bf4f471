import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { scaled, timeoutScale, waitExit, waitFor } from '../../../src/lab/process.js';

test('waitFor returns the first value that is not undefined or false', async () => {
  let n = 0;
  const v = await waitFor('n to reach 3', async () => (++n >= 3 ? n : n === 1 ? undefined : false), 5000, 1);
  assert.equal(v, 3);
});

test('waitFor times out naming what it waited for and the last error', async () => {
  await assert.rejects(
    waitFor(
      'the moon',
      async () => {
        throw new Error('not yet risen');
      },
      30,
      5,
    ),
    { message: 'timed out after 30 ms waiting for the moon (last error: not yet risen)' },
  );
  await assert.rejects(waitFor('nothing', async () => false, 10, 5), { message: 'timed out after 10 ms waiting for nothing' });
});

test('waitFor quotes what explain saw at the deadline', async () => {
  await assert.rejects(waitFor('the agent ready', async () => false, 10, { intervalMs: 5, explain: () => '/status: HTTP 503' }), {
    message: 'timed out after 10 ms waiting for the agent ready\nseen at the deadline:\n/status: HTTP 503',
  });
  await assert.rejects(
    waitFor('x', async () => false, 10, {
      intervalMs: 5,
      explain: () => {
        throw new Error('agent gone');
      },
    }),
    { message: 'timed out after 10 ms waiting for x\n(explain failed: agent gone)' },
  );
});

test('KMCAST_TIMEOUT_SCALE stretches every deadline, and a bad value is a clear error', async () => {
  assert.equal(timeoutScale({}), 1);
  assert.equal(timeoutScale({ KMCAST_TIMEOUT_SCALE: '2.5' }), 2.5);
  for (const bad of ['0', 'fast', '100', '-1']) {
    assert.throws(() => timeoutScale({ KMCAST_TIMEOUT_SCALE: bad }), { message: new RegExp(`^KMCAST_TIMEOUT_SCALE=${bad}: expected a number from 0\\.5 to 20`) });
  }
  const saved = process.env.KMCAST_TIMEOUT_SCALE;
  process.env.KMCAST_TIMEOUT_SCALE = '3';
  try {
    assert.equal(scaled(1000), 3000);
    const t0 = Date.now();
    await assert.rejects(waitFor('nothing', async () => false, 20, 5), { message: 'timed out after 60 ms waiting for nothing [20 ms x KMCAST_TIMEOUT_SCALE=3]' });
    assert.ok(Date.now() - t0 >= 55, 'the scaled deadline is the one waited for');
  } finally {
    if (saved === undefined) delete process.env.KMCAST_TIMEOUT_SCALE;
    else process.env.KMCAST_TIMEOUT_SCALE = saved;
  }
});

test('waitExit waits for the streams to close, but not for a grandchild that holds them', async () => {
  // The shell prints, leaves a background sleep holding stdout, and exits: 'close' would come only
  // when the sleep ends, so the wait for it is bounded.
  const child = spawn('sh', ['-c', 'echo REPORT; sleep 30 & exit 0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const t0 = Date.now();
  assert.equal(await waitExit(child), 0);
  const took = Date.now() - t0;
  assert.ok(took < 4000, `returned after ${took} ms`);
  assert.equal(out, 'REPORT\n');
  child.stdout.destroy();
  child.stderr.destroy();
});
