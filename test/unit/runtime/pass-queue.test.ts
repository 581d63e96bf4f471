import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassQueue } from '../../../src/runtime/pass-queue.js';

type K = 'full' | 'joins' | 'entries';

function queue(run: (k: K) => Promise<void>, errors: Array<[K, number]> = []): PassQueue<K> {
  return new PassQueue<K>({
    kinds: ['full', 'joins', 'entries'],
    subsumes: (k) => (k === 'full' ? ['joins', 'entries'] : []),
    delayMs: (k) => (k === 'full' ? 20 : 0),
    run,
    onError: (k, _err, ms) => errors.push([k, ms]),
    retryKind: 'full',
    backoff: { initialMs: 10, maxMs: 40 },
  });
}

const until = async (what: string, fn: () => boolean, ms = 2000): Promise<void> => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(2);
  }
};

test('a burst is one pass; one pass at a time; the highest kind first, and a full pass subsumes the rest', async () => {
  const ran: K[] = [];
  let release: () => void = () => undefined;
  const q = queue(async (k) => {
    ran.push(k);
    if (ran.length === 1) await new Promise<void>((r) => (release = r));
  });
  q.request('joins');
  q.request('joins');
  await until('the first pass runs', () => ran.length === 1);
  assert.equal(q.busy, true);
  q.request('entries');
  q.request('joins');
  q.request('full');
  q.request('entries');
  assert.deepEqual(q.waiting, ['full', 'joins', 'entries']);
  release();
  await until('the queue drains', () => !q.busy && q.waiting.length === 0);
  assert.deepEqual(ran, ['joins', 'full'], 'one joins pass for the burst, then one full pass for everything pending');
  await q.stop();
});

test('a failure is retried as the full pass after a back-off that doubles to the cap and resets on success', async () => {
  const errors: Array<[K, number]> = [];
  let fail = 4;
  const ran: K[] = [];
  const q = queue(async (k) => {
    ran.push(k);
    if (fail-- > 0) throw new Error('nft: Operation not permitted');
  }, errors);
  q.request('entries');
  await until('recovered', () => fail < 0 && !q.busy);
  assert.deepEqual(ran, ['entries', 'full', 'full', 'full', 'full']);
  assert.deepEqual(errors, [
    ['entries', 10],
    ['full', 20],
    ['full', 40],
    ['full', 40],
  ]);
  assert.equal(q.nextRetryMs, 10, 'reset by the success');
  await q.stop();
});

test('runNow runs a start-up pass in the queue and hands its error to the caller, no retry', async () => {
  const errors: Array<[K, number]> = [];
  const q = queue(async () => undefined, errors);
  await assert.rejects(
    q.runNow('full', async () => Promise.reject(new Error('exit 3'))),
    /exit 3/,
  );
  await sleep(30);
  assert.deepEqual(errors, [], 'not retried: the caller decides');
  let ran = 0;
  await q.runNow('full', async () => {
    ran++;
  });
  assert.equal(ran, 1);
  await q.stop();
});

test('stop: nothing new starts, the pass in flight is waited for', async () => {
  let done = false;
  const q = queue(async () => {
    await sleep(30);
    done = true;
  });
  q.request('joins');
  await until('running', () => q.busy);
  await q.stop();
  assert.equal(done, true);
  q.request('full');
  await sleep(40);
  assert.equal(q.busy, false);
});
