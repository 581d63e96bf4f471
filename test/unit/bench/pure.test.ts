import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import type { ScenarioResult, TrialOutcome } from '../../../bench/lib/pure.js';
import {
  below,
  bursts,
  findMaxRate,
  formatScenario,
  gatewayState,
  MdbMonitorParser,
  NODE_OPTION_SETS,
  overlapsBurst,
  parseCpuTicks,
  parseIperfClientSent,
  parseIperfServer,
  parseMonitorTimestamp,
  parsePrivateBytes,
  parseVmRssBytes,
  pct,
  promValue,
  ratio,
  resourceLabel,
} from '../../../bench/lib/pure.js';

test('parseIperfClientSent and parseIperfServer read iperf2 reports; the last server line wins', () => {
  assert.equal(parseIperfClientSent('[  1] Sent 196069 datagrams\n'), 196069);
  assert.equal(parseIperfClientSent('no report'), undefined);
  const server = ['[  1] 0.00-1.00 sec  1.2 MBytes  10.0 Mbits/sec   0.010 ms  5/1000 (0.5%)', '[  1] 0.00-2.00 sec  2.4 MBytes  10.0 Mbits/sec   0.012 ms 26711/196068 (14%)'].join('\n');
  assert.deepEqual(parseIperfServer(server), { lost: 26711, total: 196068 });
  assert.deepEqual(parseIperfServer('   0.000 ms -3/ 10 (-30%)'), { lost: 0, total: 10 }, 'negative lost (reordering) clamps to 0');
  assert.equal(parseIperfServer('nothing here'), undefined);
});

test('parseVmRssBytes and parseCpuTicks read /proc, also with spaces and ")" in the command name', () => {
  assert.equal(parseVmRssBytes('Name:\tnode\nVmHWM:\t  70000 kB\nVmRSS:\t   61440 kB\n'), 61440 * 1024);
  assert.equal(parseVmRssBytes('Name:\tnode\n'), undefined);
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  const stat = '1234 (node (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0';
  assert.equal(parseCpuTicks(stat), 325);
  assert.equal(parseCpuTicks('garbage'), undefined);
});

test('findMaxRate: the sender is the limit when the unlimited trial passes', async () => {
  const offered: number[] = [];
  const r = await findMaxRate(
    async (pps) => {
      offered.push(pps);
      return { offeredPps: pps, sentPps: 50_000, lossPercent: 0.01 };
    },
    { maxLossPercent: 0.1, steps: 5 },
  );
  assert.deepEqual(offered, [0]);
  assert.equal(r.senderBound, true);
  assert.equal(r.maxPps, 50_000);
});

test('findMaxRate: binary search converges below a loss cliff and reports the best passing rate', async () => {
  // A path that loses above 30,000 pps; the sender manages 100,000.
  const trial = async (pps: number): Promise<TrialOutcome> => {
    const sent = pps === 0 ? 100_000 : pps;
    return { offeredPps: pps, sentPps: sent, lossPercent: sent > 30_000 ? 5 : 0 };
  };
  const r = await findMaxRate(trial, { maxLossPercent: 0.1, steps: 8 });
  assert.equal(r.senderBound, false);
  assert.ok(r.maxPps <= 30_000 && r.maxPps > 28_000, `maxPps ${r.maxPps}`);
  assert.equal(r.trials.length, 9, 'the unlimited trial and 8 steps');
  const none = await findMaxRate(async (pps) => ({ offeredPps: pps, sentPps: pps || 1000, lossPercent: 50 }), { maxLossPercent: 0.1, steps: 3 });
  assert.equal(none.maxPps, 0, 'no passing trial: 0');
});

test('pct is nearest-rank; ratio refuses missing or zero baselines', () => {
  const v = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
  assert.equal(pct(v, 50), 5);
  assert.equal(pct(v, 99), 10);
  assert.equal(pct(v, 0), 1);
  assert.equal(pct([], 50), null);
  assert.equal(ratio(30, 60), 0.5);
  assert.equal(ratio(30, 0), null);
  assert.equal(ratio(null, 60), null);
});

test('formatScenario: ratio column against a row of another scenario, per-row baselines', () => {
  const base: ScenarioResult = {
    name: 'baseline',
    title: 't',
    rows: [
      { label: 'n64', values: { pps: 1000 } },
      { label: 'n1200', values: { pps: 400 } },
    ],
    notes: [],
    seconds: 1,
  };
  const r: ScenarioResult = {
    name: 'k',
    title: 'kmcast',
    ratioOf: { metric: 'pps', baseline: 'n64', baselineScenario: 'baseline', baselineFor: { k1200: 'n1200' } },
    rows: [
      { label: 'k64', values: { pps: 600 } },
      { label: 'k1200', values: { pps: 100 } },
      { label: 'kx', values: { pps: null } },
    ],
    notes: ['a note'],
    seconds: 2,
  };
  const out = formatScenario(r, new Map([['baseline', base]]));
  const line = (label: string): string => out.split('\n').find((l) => l.trim().startsWith(label)) ?? '';
  assert.match(line('k64'), /0\.60x$/);
  assert.match(line('k1200'), /0\.25x$/);
  assert.match(line('kx'), /-\s+-$/);
  assert.match(out, /- a note/);
});

test('NODE_OPTION_SETS: labels unique, default first, and this Node.js accepts every option set', () => {
  assert.deepEqual(NODE_OPTION_SETS[0]?.args, []);
  assert.equal(new Set(NODE_OPTION_SETS.map((s) => s.label)).size, NODE_OPTION_SETS.length);
  for (const set of NODE_OPTION_SETS) {
    const r = spawnSync(process.execPath, [...set.args, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8', env: { ...process.env, ...set.env } });
    assert.equal(r.stdout, 'ok', `${set.label}: ${r.stderr}`);
  }
  assert.equal(resourceLabel('idle', NODE_OPTION_SETS[0]!), 'idle');
  assert.equal(resourceLabel('idle', { label: 'x', args: ['--a', '--b'] }), 'idle, --a --b');
  assert.equal(resourceLabel('idle', { label: 'x', args: ['--a'], env: { M: '2' } }), 'idle, M=2 --a');
});

test('gatewayState reads active, joins and the inbound count of one group from a node /status', () => {
  const status = {
    mode: 'node',
    gateway: {
      active: true,
      joined: ['239.255.72.1'],
      table: { installed: true },
      traffic: [
        { group: '239.255.72.1', direction: 'in', datagrams: 1200, bytes: 9, dropped: { rate: 3, ttl: 0, loop: 2 } },
        { group: '239.255.72.1', direction: 'out', datagrams: 7, bytes: 9, dropped: { rate: 100 } },
        { group: '239.255.72.9', direction: 'in', datagrams: 50, bytes: 9, dropped: {} },
      ],
    },
  };
  assert.deepEqual(gatewayState(JSON.stringify(status), '239.255.72.1'), { active: true, installed: true, joined: ['239.255.72.1'], inbound: 1200 });
  assert.deepEqual(gatewayState(JSON.stringify(status), '239.255.72.2'), { active: true, installed: true, joined: ['239.255.72.1'], inbound: 0 }, 'a group without traffic');
  const standby = { gateway: { active: false, joined: [], table: { installed: false } } };
  assert.deepEqual(gatewayState(JSON.stringify(standby), '239.255.72.1'), { active: false, installed: false, joined: [], inbound: 0 });
  assert.equal(gatewayState(JSON.stringify({ mode: 'node' }), '239.255.72.1'), undefined, 'no gateway on this node');
  assert.equal(gatewayState('not json', '239.255.72.1'), undefined);
});

test('parseMonitorTimestamp reads bridge -t timestamps (printed with TZ=UTC) to the microsecond', () => {
  assert.equal(parseMonitorTimestamp('Timestamp: Fri Dec  4 21:50:04 2026 412266 usec'), Date.UTC(2026, 11, 4, 21, 50, 4) + 412.266);
  assert.equal(parseMonitorTimestamp('Timestamp: Mon Jan 12 03:04:05 2026 5 usec\n'), Date.UTC(2026, 0, 12, 3, 4, 5) + 0.005);
  assert.equal(parseMonitorTimestamp('dev kmcvx100 port kmcvx100 grp 239.1.1.1 permanent dst 172.31.1.2'), undefined);
  assert.equal(parseMonitorTimestamp('Timestamp: garbage 99 usec'), undefined);
});

test('MdbMonitorParser stamps each entry with the Timestamp line before it, or its arrival without one', () => {
  const p = new MdbMonitorParser();
  assert.equal(p.push('Timestamp: Fri Dec  4 21:50:04 2026 412266 usec', 1), undefined);
  const at = Date.UTC(2026, 11, 4, 21, 50, 4) + 412.266;
  assert.deepEqual(p.push('dev kmcvx100 port kmcvx100 grp 239.255.110.5 permanent dst 172.31.1.2', at + 0.5), {
    deleted: false,
    dev: 'kmcvx100',
    group: '239.255.110.5',
    dst: '172.31.1.2',
    atMs: at,
    arrivalMs: at + 0.5,
  });
  const del = p.push('Deleted dev kmcvx100 port kmcvx100 grp 239.255.110.5 permanent dst 172.31.1.2', 42);
  assert.equal(del?.deleted, true);
  assert.equal(del?.atMs, 42, 'a stamp is used once');
  assert.equal(p.push('dev kmcbr port kmcv2 grp ff02::1:ff9f:580c temp', 43)?.dst, undefined, 'a bridge port entry has no dst');
  assert.equal(p.push('something else', 44), undefined);
});

test("promValue sums a metric's samples, filtered by labels", () => {
  const text = [
    '# HELP kmcast_node_syncs_total Full data plane passes by result.',
    '# TYPE kmcast_node_syncs_total counter',
    'kmcast_node_syncs_total{result="ok"} 12',
    'kmcast_node_syncs_total{result="error"} 3',
    'kmcast_node_join_reads_total{cause="event"} 7',
    'kmcast_node_join_reads_total{cause="resync"} 220',
    'kmcast_node_ready 1',
  ].join('\n');
  assert.equal(promValue(text, 'kmcast_node_syncs_total'), 15);
  assert.equal(promValue(text, 'kmcast_node_syncs_total', { result: 'ok' }), 12);
  assert.equal(promValue(text, 'kmcast_node_join_reads_total', { cause: 'resync' }), 220);
  assert.equal(promValue(text, 'kmcast_node_ready'), 1);
  assert.equal(promValue(text, 'kmcast_node_syncs'), undefined, 'names match whole');
  assert.equal(promValue(text, 'kmcast_node_syncs_total', { result: 'none' }), undefined);
});

test('parsePrivateBytes adds the Private_* lines of smaps_rollup; below compares with a limit', () => {
  const rollup = 'Rss:               65236 kB\nPss:               26710 kB\nShared_Clean:      45504 kB\nPrivate_Clean:       368 kB\nPrivate_Dirty:     19364 kB\nPrivate_Hugetlb:       0 kB\n';
  assert.equal(parsePrivateBytes(rollup), (368 + 19364) * 1024);
  assert.equal(parsePrivateBytes('Rss: 1 kB\n'), undefined);
  assert.equal(below(68.8, 100), 'met');
  assert.equal(below(100, 100), 'missed');
  assert.equal(below(null, 100), '-');
  assert.equal(below(Number.NaN, 100), '-');
});

test('bursts groups times by gaps and keeps the big ones; overlapsBurst checks a window against them', () => {
  const times = [1000, 1010, 1030, 1040, 5000, 5100, 9000, 9020, 9040, 9060, 9500];
  assert.deepEqual(bursts(times, 50, 3), [
    { start: 1000, end: 1040, count: 4 },
    { start: 9000, end: 9060, count: 4 },
  ]);
  assert.deepEqual(bursts([...times].reverse(), 50, 3).length, 2, 'any order');
  assert.deepEqual(bursts(times, 50, 1).length, 5);
  assert.deepEqual(bursts([], 50, 1), []);
  const b = bursts(times, 50, 3);
  assert.equal(overlapsBurst(b, 990, 1005), true, 'a window that ends inside');
  assert.equal(overlapsBurst(b, 1020, 1025), true, 'inside');
  assert.equal(overlapsBurst(b, 1041, 8999), false, 'between');
  assert.equal(overlapsBurst(b, 9060, 9100), true, 'touching the end');
});
