import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  findMaxRate,
  formatScenario,
  parseCpuTicks,
  parseIperfClientSent,
  parseIperfServer,
  parseVmRssBytes,
  pct,
  ratio,
} from '../../../bench/lib/pure.js';
import type { ScenarioResult, TrialOutcome } from '../../../bench/lib/pure.js';

test('iperf2 client and server reports', () => {
  assert.equal(parseIperfClientSent('[  1] 0.0000-2.0342 sec  6.34 MBytes  26.2 Mbits/sec\n[  1] Sent 103900 datagrams\n'), 103900);
  assert.equal(parseIperfClientSent('nothing'), undefined);
  const server = [
    '[ ID] Interval       Transfer     Bandwidth        Jitter   Lost/Total Datagrams',
    '[  1] 0.0000-1.0000 sec  5.1 MBytes  43.0 Mbits/sec   0.010 ms 100/90000 (0.11%)',
    '[  1] 0.0000-1.9970 sec  10.3 MBytes  43.4 Mbits/sec   0.000 ms 26711/196068 (14%)',
  ].join('\n');
  assert.deepEqual(parseIperfServer(server), { lost: 26711, total: 196068 });
  assert.deepEqual(parseIperfServer('[  1] 0.0-1.0 sec 1 KBytes 8 Kbits/sec 0.000 ms 0/  12 (0%)'), { lost: 0, total: 12 });
  assert.equal(parseIperfServer('Server listening on UDP port 5201'), undefined);
});

test('/proc parsers: VmRSS in bytes, utime+stime even with spaces and parentheses in comm', () => {
  assert.equal(parseVmRssBytes('Name:\tnode\nVmRSS:\t   70348 kB\nRssAnon: 1 kB\n'), 70348 * 1024);
  assert.equal(parseVmRssBytes('Name: x\n'), undefined);
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3)); // field k holds the value k
  const stat = `1234 (my (odd) proc) ${fields.join(' ')}`;
  assert.equal(parseCpuTicks(stat), 14 + 15);
});

test('max-rate search: sender-bound when the unlimited trial passes', async () => {
  const r = await findMaxRate(async (pps) => ({ offeredPps: pps, sentPps: 50_000, lossPercent: 0 }), { maxLossPercent: 0.1, steps: 5 });
  assert.equal(r.senderBound, true);
  assert.equal(r.maxPps, 50_000);
  assert.equal(r.trials.length, 1);
});

test('max-rate search converges on the knee of a simulated path', async () => {
  const knee = 31_000;
  const trial = async (pps: number): Promise<TrialOutcome> => {
    const sent = pps === 0 ? 100_000 : pps;
    return { offeredPps: pps, sentPps: sent, lossPercent: sent > knee ? ((sent - knee) / sent) * 100 : 0 };
  };
  const r = await findMaxRate(trial, { maxLossPercent: 0.1, steps: 8 });
  assert.equal(r.senderBound, false);
  assert.ok(r.maxPps <= knee && r.maxPps > knee * 0.97, `found ${r.maxPps}`);
  assert.ok(r.trials.every((t) => t.offeredPps === 0 || t.offeredPps <= 100_000));
  const none = await findMaxRate(async (pps) => ({ offeredPps: pps, sentPps: pps || 1000, lossPercent: 50 }), { maxLossPercent: 0.1, steps: 4 });
  assert.equal(none.maxPps, 0);
});

test('ratios against the same-run baseline, per row', () => {
  const base: ScenarioResult = {
    name: 'baseline',
    title: 'native',
    rows: [
      { label: 'native 64B', values: { pps: 50_000 } },
      { label: 'native 1200B', values: { pps: 20_000 } },
    ],
    notes: [],
    seconds: 1,
  };
  const k: ScenarioResult = {
    name: 'k',
    title: 'kmcast',
    ratioOf: { metric: 'pps', baseline: 'native 64B', baselineScenario: 'baseline', baselineFor: { 'k 1200B': 'native 1200B' } },
    rows: [
      { label: 'k 64B', values: { pps: 30_000 } },
      { label: 'k 1200B', values: { pps: 10_000 } },
      { label: 'k none', values: { pps: null } },
    ],
    notes: ['a note'],
    seconds: 12.4,
  };
  const text = formatScenario(k, new Map([['baseline', base]]));
  const lines = text.split('\n');
  assert.equal(lines[0], '== k: kmcast (12 s)');
  assert.match(lines[1] ?? '', /pps\s+x baseline$/);
  assert.match(lines[2] ?? '', /^ {3}k 64B\s+30000\s+0\.60x$/);
  assert.match(lines[3] ?? '', /^ {3}k 1200B\s+10000\s+0\.50x$/);
  assert.match(lines[4] ?? '', /^ {3}k none\s+-\s+-$/);
  assert.equal(lines[5], '   - a note');
  assert.equal(ratio(1, 0), null);
  assert.equal(ratio(3, 2), 1.5);
});

test('percentiles of unsorted samples', () => {
  assert.equal(pct([5, 1, 4, 2, 3], 50), 3);
  assert.equal(pct([5, 1, 4, 2, 3], 99), 5);
  assert.equal(pct([], 50), null);
});
