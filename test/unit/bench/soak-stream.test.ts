import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ReceiverReport, SenderReport } from '../../../bench/soak/stream.js';
import { analyse, countOutside, missingRanges, seqTime } from '../../../bench/soak/stream.js';

test('missingRanges: gaps between seen ranges, before the first and after the last', () => {
  assert.deepEqual(missingRanges([[0, 9]], 10), []);
  assert.deepEqual(missingRanges([], 5), [[0, 4]]);
  assert.deepEqual(
    missingRanges(
      [
        [3, 4],
        [8, 20],
      ],
      12,
    ),
    [
      [0, 2],
      [5, 7],
    ],
  );
  assert.deepEqual(
    missingRanges(
      [
        [6, 7],
        [0, 2],
      ],
      10,
    ),
    [
      [3, 5],
      [8, 9],
    ],
    'unsorted input',
  );
  assert.deepEqual(
    missingRanges(
      [
        [0, 3],
        [2, 5],
      ],
      8,
    ),
    [[6, 7]],
    'overlapping input',
  );
});

test('seqTime and countOutside place lost datagrams on the sender schedule', () => {
  const s = { t0: 10_000, rate: 100 };
  assert.equal(seqTime(s, 0), 10_000);
  assert.equal(seqTime(s, 250), 12_500);
  // seq 100..199 are due at 11000..11990 ms; the window covers 11500..12000: 50 inside.
  assert.equal(countOutside(s, [100, 199], [{ label: 'w', start: 11_500, end: 12_000 }]), 50);
  assert.equal(countOutside(s, [100, 199], []), 100);
});

test('analyse: per pair lost, duplicates and loss outside windows; a sender never counts itself', () => {
  const senders: SenderReport[] = [
    { id: 'a', sent: 100, errors: 0, t0: 0, rate: 10, maxLagMs: 0 },
    { id: 'b', sent: 100, errors: 0, t0: 0, rate: 10, maxLagMs: 0 },
  ];
  const receivers = new Map<string, ReceiverReport>([
    [
      'a',
      {
        senders: {
          b: {
            received: 90,
            duplicates: 2,
            seen: [
              [0, 39],
              [50, 99],
            ],
          },
        },
        rejoins: 0,
        other: 0,
      },
    ],
    ['c', { senders: { a: { received: 100, duplicates: 0, seen: [[0, 99]] } }, rejoins: 1, other: 0 }],
  ]);
  const pairs = analyse(senders, receivers, [{ label: 'restart', start: 4000, end: 4500 }]);
  assert.deepEqual(
    pairs.map((p) => [p.sender, p.receiver, p.received, p.lost, p.duplicates, p.lostOutsideWindows]),
    [
      ['b', 'a', 90, 10, 2, 4], // seq 40..49 due at 4000..4900 ms: 45..49 fall after the window
      ['a', 'c', 100, 0, 0, 0],
      ['b', 'c', 0, 100, 0, 94], // heard nothing from b; seq 40..45 (4000..4500 ms) fall inside the window
    ],
  );
  assert.deepEqual(pairs[0]!.lossTimes, [[4000, 5000]]);
});
