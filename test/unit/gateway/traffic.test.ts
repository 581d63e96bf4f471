import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GatewayReadBack, GroupCount } from '../../../src/gateway/nft.js';
import type { Totals } from '../../../src/gateway/traffic.js';
import { carry, dropTotals, OTHER, trafficRows } from '../../../src/gateway/traffic.js';

/** A read-back whose in-pass set holds `groups`, each with `n` datagrams of 100 bytes. */
function table(groups: readonly string[], n = 1): GatewayReadBack {
  const pass = new Map<string, GroupCount>(groups.map((g) => [g, { packets: n, bytes: 100 * n }]));
  return { chains: new Map(), stale: false, counters: new Map([['in-pass', pass]]), drops: new Map([['in-drop-full', { packets: 2, bytes: 0 }]]) };
}
const range = (n: number, from: number): string[] => Array.from({ length: n }, (_, i) => `239.${10 + Math.floor((from + i) / 250)}.0.${((from + i) % 250) + 1}`);
const sum = (t: Totals): number => [...(t.get('in-pass') ?? new Map<string, GroupCount>()).values()].reduce((a, c) => a + c.packets, 0);

test('carried totals stay bounded across replacements of tables holding different groups, and monotonic', () => {
  const carried: Totals = new Map();
  const keep = new Set(['239.1.1.1']);
  let total = 0;
  for (let round = 0; round < 4; round++) {
    const groups = [...range(500, round * 500), '239.1.1.1'];
    carry(carried, table(groups), keep, 600);
    total += groups.length;
    assert.equal(sum(carried), total, 'no datagram lost from the totals');
    // Per group: at most the replaced table's groups, the configured singles and `other`.
    assert.ok(carried.get('in-pass')!.size <= groups.length + 1, `round ${round}: ${carried.get('in-pass')!.size} carried groups`);
  }
  assert.equal(carried.get('in-pass')!.get('239.1.1.1')?.packets, 4, 'a configured single group keeps its own total');
  assert.equal(carried.get('in-pass')!.get(OTHER)?.packets, 1500, "earlier tables' range groups fold into other");
});

test('under the bound a group keeps its own total across replacements, also when the latest table never saw it', () => {
  const carried: Totals = new Map();
  carry(carried, table(['239.10.0.1', '239.10.0.2'], 5), new Set());
  carry(carried, table(['239.10.0.2']), new Set());
  carry(carried, table([]), new Set());
  assert.deepEqual(carried.get('in-pass')!.get('239.10.0.1'), { packets: 5, bytes: 500 });
  assert.equal(carried.get('in-pass')!.get('239.10.0.2')?.packets, 6);
  assert.equal(carried.get('in-pass')!.has(OTHER), false);
});

test('rows are capped per direction, the rest add up in other; busiest first', () => {
  const totals: Totals = new Map([
    ['in-pass', new Map(range(300, 0).map((g, i) => [g, { packets: i + 1, bytes: i + 1 }]))],
    ['in-rate', new Map([[range(1, 0)[0]!, { packets: 7, bytes: 0 }]])],
  ]);
  const rows = trafficRows(totals, 10);
  assert.equal(rows.length, 11);
  assert.equal(rows[0]!.datagrams, 300);
  const other = rows.find((r) => r.group === OTHER)!;
  const all = (300 * 301) / 2;
  assert.equal(
    rows.reduce((a, r) => a + r.datagrams, 0),
    all,
    'every datagram is in a row',
  );
  assert.equal(other.dropped.rate, 7, "a capped group's drops go to other too");
  assert.deepEqual(trafficRows(new Map()), []);
});

test('drop totals by direction and reason from the named counters', () => {
  const d = dropTotals(
    new Map([
      ['in-drop-full', { packets: 2, bytes: 0 }],
      ['out-drop-total', { packets: 5, bytes: 0 }],
    ]),
  );
  assert.deepEqual(d, { in: { rate: 0, ttl: 0, loop: 0, total: 0, full: 2 }, out: { rate: 0, ttl: 0, loop: 0, total: 5, full: 0 } });
});

test('overlong drops are listed where the table counts them (an IPv6 underlay), inbound only', () => {
  const d = dropTotals(new Map([['in-drop-overlong', { packets: 3, bytes: 4290 }]]));
  assert.deepEqual(d, { in: { rate: 0, ttl: 0, loop: 0, total: 0, full: 0, overlong: 3 }, out: { rate: 0, ttl: 0, loop: 0, total: 0, full: 0 } });
});
