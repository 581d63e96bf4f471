import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { forEachLimit } from '../../../src/runtime/limit.js';

test('forEachLimit: every item once, never more than the limit in flight', async () => {
  let inFlight = 0;
  let most = 0;
  const done: number[] = [];
  await forEachLimit([...Array(20).keys()], 4, async (i) => {
    inFlight++;
    most = Math.max(most, inFlight);
    for (let k = 0; k < (i % 3) + 1; k++) await tick();
    inFlight--;
    done.push(i);
  });
  assert.equal(most, 4);
  assert.deepEqual(
    [...done].sort((a, b) => a - b),
    [...Array(20).keys()],
  );
});

test('forEachLimit: an error does not stop the other items; the first is thrown once all ended', async () => {
  const done: number[] = [];
  await assert.rejects(
    forEachLimit([1, 2, 3, 4], 2, async (i) => {
      await tick();
      if (i === 2) throw new Error('two');
      done.push(i);
    }),
    /two/,
  );
  assert.deepEqual(done, [1, 3, 4]);
});
