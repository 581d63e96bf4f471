import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LATENCY_SAMPLES, MAX_STREAMS, missingSender, percentile, SEQ_WINDOW, StreamStats, StreamTable, summarizeLatency, worstLossPercent } from '../../../src/probe/stats.js';

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

test('memory per stream is bounded: a forged sequence 2^26-1 costs the window, not 8 MiB', () => {
  const streams = Array.from({ length: 20 }, (_, i) => new StreamStats(`f${i}`, '10.0.0.9', 'probe', 0));
  for (const s of streams) assert.equal(s.record(2 ** 26 - 1, 0, 1), 'new');
  const total = streams.reduce((sum, s) => sum + s.memoryBytes(), 0);
  assert.ok(total <= 20 * (SEQ_WINDOW / 8 + 16 * 1024), `20 forged datagrams hold ${total} bytes`);
  assert.ok(total < 2 * 1024 * 1024);
});

test('duplicates are told within the window; older sequences are counted untracked', () => {
  const s = new StreamStats('a', '10.0.0.1', 'probe', 0);
  for (let i = 0; i < 3 * SEQ_WINDOW; i += 7) assert.equal(s.record(i, 0, 1), 'new', String(i));
  const top = Math.floor((3 * SEQ_WINDOW - 1) / 7) * 7;
  assert.equal(s.record(top, 0, 1), 'duplicate');
  assert.equal(s.record(top - SEQ_WINDOW / 2 - ((top - SEQ_WINDOW / 2) % 7), 0, 1), 'duplicate', 'half a window back');
  assert.equal(s.record(top - 1, 0, 1), 'new', 'a gap inside the window is new (reordered)');
  assert.equal(s.record(5, 0, 1), 'untracked', 'far behind the window');
  // A slot reused after the window moved on must not remember its old sequence.
  const w = new StreamStats('b', '10.0.0.1', 'probe', 0);
  assert.equal(w.record(0, 0, 1), 'new');
  assert.equal(w.record(SEQ_WINDOW, 0, 1), 'new');
  assert.equal(w.record(2 * SEQ_WINDOW, 0, 1), 'new');
  assert.equal(w.record(SEQ_WINDOW * 10 + 3, 0, 1), 'new');
  assert.equal(w.summary().received, 4);
  assert.ok(w.memoryBytes() <= SEQ_WINDOW / 8 + 16 * 1024);
});

test('latency samples are capped (a reservoir), the percentiles stay right', () => {
  const s = new StreamStats('a', '10.0.0.1', 'probe', 0);
  const n = MAX_LATENCY_SAMPLES + 50_000;
  for (let i = 0; i < n; i++) s.record(i, i, i + (i % 100) + 1);
  const r = s.summary();
  assert.equal(r.received, n);
  assert.ok(s.memoryBytes() <= MAX_LATENCY_SAMPLES * 8 + SEQ_WINDOW / 8 + 16 * 1024);
  assert.ok(r.latencyMs && Math.abs(r.latencyMs.p50 - 50) <= 2 && r.latencyMs.max === 100);
});

test('the number of streams is bounded; datagrams of streams beyond it are counted, not stored', () => {
  const t = new StreamTable();
  for (let i = 0; i < MAX_STREAMS; i++) assert.ok(t.get(`p:${i}`, () => new StreamStats(`s${i}`, '10.0.0.9', 'probe', 0)));
  assert.equal(
    t.get('p:new', () => new StreamStats('x', '10.0.0.9', 'probe', 0)),
    undefined,
  );
  assert.equal(t.refused, 1);
  assert.ok(t.get('p:0', () => assert.fail('an existing stream is found, not made')));
  assert.equal(t.size, MAX_STREAMS);
  assert.equal([...t.values()].length, MAX_STREAMS);
});
