import { test } from 'node:test';
import assert from 'node:assert/strict';
import { missingSender, percentile, StreamStats, summarizeLatency, worstLossPercent } from '../../../src/probe/stats.js';

test('in-order complete stream: nothing lost, latency and join latency from the timestamps', () => {
  const s = new StreamStats('a', '10.0.0.1', 'probe', 1000);
  for (let i = 0; i < 10; i++) s.record(i, 1000 + i * 10, 1000 + i * 10 + 0.5 + i * 0.1, 10);
  const r = s.summary();
  assert.equal(r.received, 10);
  assert.equal(r.expected, 10);
  assert.equal(r.lost, 0);
  assert.equal(r.lossPercent, 0);
  assert.equal(r.duplicates, 0);
  assert.equal(r.reordered, 0);
  assert.ok(r.latencyMs);
  assert.ok(Math.abs(r.latencyMs.p50 - 0.9) < 1e-9);
  assert.ok(Math.abs(r.latencyMs.max - 1.4) < 1e-9);
  assert.equal(r.joinLatencyMs, 0.5);
  assert.equal(s.complete(), true);
});

test('duplicates are counted apart, reordering is a sequence below the highest seen', () => {
  const s = new StreamStats('a', '10.0.0.1', 'probe', 0);
  for (const seq of [0, 2, 1, 1, 3, 5, 4, 5]) s.record(seq, 0, 1, 6);
  const r = s.summary();
  assert.equal(r.received, 6);
  assert.equal(r.duplicates, 2);
  assert.equal(r.reordered, 2); // 1 after 2, 4 after 5
  assert.equal(r.lost, 0);
});

test('lost counts the missing tail from the announced total', () => {
  const s = new StreamStats('a', '10.0.0.1', 'probe', 0);
  for (const seq of [0, 1, 3]) s.record(seq, 0, 1, 8);
  const r = s.summary();
  assert.equal(r.expected, 8);
  assert.equal(r.lost, 5);
  assert.equal(r.lossPercent, 62.5);
  assert.equal(s.complete(), false);
});

test('without an announced total the highest sequence bounds expected; finish() sets the total', () => {
  const s = new StreamStats('i', '10.0.0.2', 'iperf2', 0);
  for (const seq of [0, 1, 4]) s.record(seq, 0, 1);
  assert.equal(s.summary().lost, 2);
  assert.equal(s.complete(), false);
  s.finish(7);
  assert.equal(s.summary().expected, 7);
  assert.equal(s.summary().lost, 4);
});

test('HELLO counts for join latency but not as data', () => {
  const s = new StreamStats('a', '10.0.0.1', 'probe', 100);
  s.hello(130, 5);
  s.record(0, 140, 141, 5);
  const r = s.summary();
  assert.equal(r.joinLatencyMs, 30);
  assert.equal(r.received, 1);
  assert.equal(r.lost, 4);
});

test('the bit set grows for large sequences and refuses absurd ones', () => {
  const s = new StreamStats('a', '10.0.0.1', 'probe', 0);
  assert.equal(s.record(100_000, 0, 1), 'new');
  assert.equal(s.record(100_000, 0, 1), 'duplicate');
  assert.equal(s.record(2 ** 31, 0, 1), 'untracked');
  assert.equal(s.summary().untracked, 1);
});

test('percentiles by nearest rank', () => {
  const v = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(v, 50), 50);
  assert.equal(percentile(v, 99), 99);
  assert.equal(percentile(v, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.deepEqual(summarizeLatency([3, 1, 2]), { p50: 2, p99: 3, max: 3 });
  assert.equal(summarizeLatency([]), null);
});

test('a missing sender is all lost and drives the worst loss', () => {
  const m = missingSender('10.0.0.9', 50);
  assert.equal(m.lost, 50);
  assert.equal(m.lossPercent, 100);
  const ok = new StreamStats('a', '10.0.0.1', 'probe', 0);
  ok.record(0, 0, 1, 1);
  assert.equal(worstLossPercent([ok.summary()]), 0);
  assert.equal(worstLossPercent([ok.summary(), m]), 100);
});
