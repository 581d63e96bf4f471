import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMatrix, formatMatrix, matrixCells, socatAddress } from '../../../src/lab/traffic.js';
import type { ReceiverReport } from '../../../src/lab/traffic.js';

const pods = [
  { name: 'n1p1', ip: '10.244.1.11' },
  { name: 'n2p1', ip: '10.244.2.11' },
  { name: 'n2p2', ip: '10.244.2.12' },
];

function reports(): Map<string, ReceiverReport> {
  return new Map<string, ReceiverReport>([
    ['n1p1', { counts: { multicast: { '10.244.1.11': 3, '10.244.2.11': 3 } }, other: 0 }],
    ['n2p1', { counts: { multicast: { '10.244.2.12': 2, '192.0.2.9': 5 }, broadcast: { '10.244.2.12': 1 } }, other: 1 }],
    ['n2p2', { counts: {}, other: 0 }],
  ]);
}

test('buildMatrix: counts[kind][sender][receiver] from the receivers reports; unknown sources ignored', () => {
  const m = buildMatrix(['multicast', 'broadcast'], pods, 3, reports());
  assert.deepEqual(m.pods, ['n1p1', 'n2p1', 'n2p2']);
  assert.equal(m.sent, 3);
  assert.deepEqual(m.counts.multicast, {
    n1p1: { n1p1: 3, n2p1: 0, n2p2: 0 },
    n2p1: { n1p1: 3, n2p1: 0, n2p2: 0 },
    n2p2: { n1p1: 0, n2p1: 2, n2p2: 0 },
  });
  assert.deepEqual(m.counts.broadcast, {
    n1p1: { n1p1: 0, n2p1: 0, n2p2: 0 },
    n2p1: { n1p1: 0, n2p1: 0, n2p2: 0 },
    n2p2: { n1p1: 0, n2p1: 1, n2p2: 0 },
  });
  assert.equal(Object.hasOwn(m.counts, 'linklocal'), false);
});

test('matrixCells leaves out the diagonal', () => {
  const cells = matrixCells(buildMatrix(['multicast'], pods, 3, reports()), 'multicast');
  assert.equal(cells.length, 6);
  assert.equal(cells.some((c) => c.from === c.to), false);
  assert.deepEqual(cells.find((c) => c.from === 'n2p1' && c.to === 'n1p1'), { from: 'n2p1', to: 'n1p1', count: 3 });
});

test('formatMatrix: rows are senders, columns receivers, - on the diagonal', () => {
  const out = formatMatrix(buildMatrix(['multicast'], pods, 3, reports()), 'multicast');
  assert.equal(
    out,
    [
      'multicast: datagrams received (rows: sender, columns: receiver; 3 sent by each sender)',
      'from \\ to  n1p1  n2p1  n2p2',
      'n1p1          -     0     0',
      'n2p1          3     -     0',
      'n2p2          0     2     -',
      '',
    ].join('\n'),
  );
});

test('socat addresses: TTL on multicast, SO_BROADCAST on broadcast', () => {
  const o = { group: '239.1.1.1', linkLocalGroup: '224.0.0.251', port: 7500 };
  assert.equal(socatAddress('multicast', o), 'UDP4-DATAGRAM:239.1.1.1:7500,ip-multicast-ttl=4');
  assert.equal(socatAddress('linklocal', o), 'UDP4-DATAGRAM:224.0.0.251:7500,ip-multicast-ttl=1');
  assert.equal(socatAddress('broadcast', o), 'UDP4-DATAGRAM:255.255.255.255:7500,broadcast');
});
