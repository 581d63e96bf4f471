import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../../src/lab/process.js';

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
