import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyedLock } from '../../../src/runtime/keyed-lock.js';

function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

test('sections of one key run one after the other, in order; other keys run meanwhile', async () => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const first = gate();
  const a1 = lock.run('domain:a', async () => {
    log.push('a1 start');
    await first.wait;
    log.push('a1 end');
    return 1;
  });
  const a2 = lock.run('domain:a', async () => {
    log.push('a2');
    return 2;
  });
  const b = lock.run('gateway', async () => {
    log.push('b');
    return 3;
  });
  assert.equal(await b, 3);
  assert.deepEqual(log, ['a1 start', 'b'], 'a2 waits for a1; the other key does not');
  assert.equal(lock.held('domain:a'), true);
  first.open();
  assert.deepEqual(await Promise.all([a1, a2]), [1, 2]);
  assert.deepEqual(log, ['a1 start', 'b', 'a1 end', 'a2']);
  assert.equal(lock.held('domain:a'), false, 'nothing kept once every section ended');
});

test('a section that throws releases the key and hands its error to its caller only', async () => {
  const lock = new KeyedLock();
  await assert.rejects(
    lock.run('k', async () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(await lock.run('k', async () => 'next'), 'next');
  assert.equal(lock.held('k'), false);
});
