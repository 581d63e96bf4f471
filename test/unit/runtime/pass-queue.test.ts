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

/** The node's shape: full beside joins and entries, each lane one pass at a time. */
function laned(run: (k: K) => Promise<void>, errors: Array<[K, number]> = []): PassQueue<K> {
  return new PassQueue<K>({
    kinds: ['full', 'joins', 'entries'],
    lane: (k) => k,
    delayMs: (k) => (k === 'full' ? 20 : 0),
    run,
    onError: (k, _err, ms) => errors.push([k, ms]),
    retryKind: 'full',
    backoff: { initialMs: 10, maxMs: 40 },
  });
}

/** A pass that runs until released. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

test('lanes: a joins pass runs while a full pass is in flight, and a burst of joins during it is one more pass', async () => {
  const full = gate();
  const joins = gate();
  const ran: K[] = [];
  const done: K[] = [];
  const q = laned(async (k) => {
    ran.push(k);
    if (k === 'full') await full.wait;
    if (k === 'joins' && ran.filter((x) => x === 'joins').length === 1) await joins.wait;
    done.push(k);
  });
  q.request('full');
  await until('the full pass runs', () => q.busyLane('full'));
  assert.equal(q.busyLane('joins'), false, 'baseline: no joins pass yet');
  q.request('joins');
  await until('the joins pass starts beside it', () => ran.includes('joins'));
  q.request('joins');
  q.request('joins');
  q.request('entries');
  await until('the entries pass ran beside both', () => done.includes('entries'));
  assert.deepEqual(done, ['entries'], 'full and the first joins pass still run');
  joins.open();
  await until('the folded joins pass ran', () => done.filter((x) => x === 'joins').length === 2);
  assert.deepEqual(q.waiting, []);
  assert.equal(q.busyLane('full'), true, 'the full pass never waited for them, nor they for it');
  full.open();
  await until('drained', () => !q.busy);
  assert.deepEqual(ran, ['full', 'joins', 'entries', 'joins'], 'three joins requests meanwhile are one pass');
  await q.stop();
});

test('lanes: one back-off for every lane, reset only by a success of the full lane; a failure anywhere is retried as a full pass', async () => {
  const errors: Array<[K, number]> = [];
  let failFull = 2;
  const ran: K[] = [];
  const q = laned(async (k) => {
    ran.push(k);
    if (k === 'entries') throw new Error('bridge: Operation not permitted');
    if (k === 'full' && failFull-- > 0) throw new Error('nft: Operation not permitted');
  }, errors);
  q.request('entries');
  await until('the entries failure was retried as full twice, then full succeeded', () => failFull < 0 && !q.busy);
  assert.deepEqual(ran, ['entries', 'full', 'full', 'full']);
  assert.deepEqual(errors, [
    ['entries', 10],
    ['full', 20],
    ['full', 40],
  ]);
  assert.equal(q.nextRetryMs, 10, 'reset by the full success');
  q.request('entries');
  await until('failed again', () => errors.length === 4);
  await until('the retry ran', () => ran.length === 6 && !q.busy);
  q.request('joins');
  await until('a joins pass succeeded', () => ran.length === 7 && !q.busy);
  q.request('entries');
  await until('failed a third time', () => errors.length === 5);
  assert.deepEqual(errors.slice(3), [
    ['entries', 10],
    ['entries', 10],
  ]);
  await q.stop();
});

test('lanes: joins pass success does not reset the back-off of a failing full pass', async () => {
  const errors: Array<[K, number]> = [];
  const ran: K[] = [];
  const q = laned(async (k) => {
    ran.push(k);
    if (k === 'full') throw new Error('nft: Operation not permitted');
  }, errors);
  q.request('full');
  await until('the first failure', () => errors.length === 1);
  q.request('joins');
  await until('joins ran', () => ran.includes('joins'));
  await until('the retry failed too', () => errors.length === 2);
  assert.deepEqual(
    errors.map((e) => e[1]),
    [10, 20],
    'the joins success between them did not reset it',
  );
  await q.stop();
});

test('lanes: runNow waits for every lane and runs alone; requests meanwhile run after it', async () => {
  const joins = gate();
  const ran: string[] = [];
  const q = laned(async (k) => {
    ran.push(k);
    if (k === 'joins') await joins.wait;
  });
  q.request('joins');
  await until('joins runs', () => q.busyLane('joins'));
  let startedAt = -1;
  const now = q.runNow('full', async () => {
    startedAt = ran.length;
    ran.push('start-up');
    await sleep(5);
  });
  await sleep(10);
  assert.equal(startedAt, -1, 'waits for the joins pass in flight');
  q.request('entries');
  joins.open();
  await now;
  assert.deepEqual(ran.slice(0, 2), ['joins', 'start-up']);
  await until('the entries request ran after it', () => ran.includes('entries'));
  await q.stop();
});
