import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer } from '../../../src/probe/pacer.js';

/** Simulates a timer loop with the given tick times and returns datagrams sent per tick. */
function drive(p: Pacer, ticks: number[]): number[] {
  return ticks.map((t) => {
    const n = p.due(t);
    p.advance(n);
    return n;
  });
}

test('the first datagram is due at start, then one every 1/rate', () => {
  const p = new Pacer({ rate: 10, count: 5, start: 1000 });
  assert.equal(p.due(999), 0);
  assert.deepEqual(drive(p, [1000, 1050, 1100, 1350]), [1, 0, 1, 2]);
  assert.equal(p.nextAt(), 1400);
  assert.deepEqual(drive(p, [1400, 5000]), [1, 0]);
  assert.equal(p.done, true);
  assert.equal(p.nextAt(), Number.POSITIVE_INFINITY);
});

test('at 20k pps with jittery ~1 ms ticks the average holds without drift', () => {
  const rate = 20_000;
  const p = new Pacer({ rate, count: 1_000_000, start: 0 });
  let t = 0;
  let i = 0;
  const counts: number[] = [];
  while (t < 10_000) {
    t += 1 + ((i++ * 7919) % 13) / 10; // 1.0 .. 2.2 ms, deterministic
    const n = p.due(t);
    p.advance(n);
    counts.push(n);
  }
  // Exactly the schedule's count at the last tick: floor(t * rate / 1000) + 1.
  assert.equal(p.sent, Math.floor((t * rate) / 1000) + 1);
  assert.ok(counts.every((n) => n <= 256));
});

test('after a stall the pacer catches up in batches of at most maxBatch', () => {
  const p = new Pacer({ rate: 1000, count: 10_000, start: 0, maxBatch: 100 });
  assert.deepEqual(drive(p, [0, 500, 500, 500, 500, 500, 500]), [1, 100, 100, 100, 100, 100, 0]);
  assert.equal(p.sent, 501);
});

test('rate 0 sends as fast as possible, count bounds the total', () => {
  const p = new Pacer({ rate: 0, count: 300, start: 0, maxBatch: 128 });
  assert.deepEqual(drive(p, [0, 0, 0, 0]), [128, 128, 44, 0]);
  assert.equal(p.plannedDurationMs(), 0);
});

test('planned duration and bad arguments', () => {
  assert.equal(new Pacer({ rate: 100, count: 1001, start: 0 }).plannedDurationMs(), 10_000);
  assert.throws(() => new Pacer({ rate: -1, count: 1, start: 0 }), /rate -1/);
  assert.throws(() => new Pacer({ rate: 1, count: 1.5, start: 0 }), /count 1.5/);
});
