import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildReport, formatJson, formatTable, renderTable } from '../../../src/probe/report.js';
import { missingSender, StreamStats } from '../../../src/probe/stats.js';

function report(maxLossPercent: number | undefined) {
  const a = new StreamStats('pod-b', '10.0.0.10', 'probe', 0);
  for (let i = 0; i < 4; i++) a.record(i, 0, 2, 4);
  return buildReport({
    id: 'pod-a',
    group: '239.255.71.1',
    port: 4321,
    mode: 'both',
    size: 64,
    rate: 10,
    send: { planned: 4, sent: 4, errors: 0, durationMs: 300, pps: 10 },
    senders: [missingSender('10.0.0.9', 4), a.summary()],
    foreign: 0,
    maxLossPercent,
  });
}

test('senders are sorted by address (numeric), worst loss drives ok', () => {
  const r = report(0);
  assert.deepEqual(
    r.senders.map((s) => s.address),
    ['10.0.0.9', '10.0.0.10'],
  );
  assert.equal(r.worstLossPercent, 100);
  assert.equal(r.ok, false);
  assert.equal(report(100).ok, true);
  assert.equal(report(undefined).ok, true);
  assert.equal(report(undefined).maxLossPercent, null);
});

test('table shows one row per sender and the verdict', () => {
  const text = formatTable(report(0));
  const lines = text.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^pod-a sent 4\/4 datagrams of 64 B to 239.255.71.1:4321 in 0.30 s \(10 pps\)$/);
  assert.match(lines[1] ?? '', /^SENDER\s+ADDRESS\s+RECEIVED\s+EXPECTED\s+LOST\s+LOSS\s+DUP\s+REORD\s+P50ms\s+P99ms\s+MAXms\s+JOINms$/);
  assert.match(lines[2] ?? '', /^\(missing\)\s+10\.0\.0\.9\s+0\s+4\s+4\s+100\.00%/);
  assert.match(lines[3] ?? '', /^pod-b\s+10\.0\.0\.10\s+4\s+4\s+0\s+0%\s+0\s+0\s+2\.000\s+2\.000\s+2\.000\s+2\.000$/);
  assert.match(lines[4] ?? '', /^FAIL: worst loss 100\.00% > --max-loss 0%$/);
});

test('JSON round-trips the report', () => {
  const r = report(5);
  assert.deepEqual(JSON.parse(formatJson(r)), JSON.parse(JSON.stringify(r)));
});

test('renderTable aligns columns', () => {
  assert.equal(
    renderTable(
      ['A', 'NUM'],
      [
        ['xx', '1'],
        ['y', '123'],
      ],
    ),
    'A   NUM\nxx    1\ny   123',
  );
});
