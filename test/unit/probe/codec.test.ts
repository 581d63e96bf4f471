import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, FIXED_HEADER_BYTES, FLAG_HELLO, FLAG_LISTENER, FLAG_READY, headerBytes, makeTemplate, MAGIC, stamp } from '../../../src/probe/codec.js';

test('encode then decode returns the same fields, padded to the size', () => {
  const buf = encode('pod-a', 200, { session: 0xdeadbeef, seq: 41, total: 1000, sentAt: 1_764_000_000_123.456 });
  assert.equal(buf.length, 200);
  assert.equal(buf.readUInt32BE(0), MAGIC);
  const d = decode(buf);
  assert.equal(d.kind, 'probe');
  if (d.kind !== 'probe') return;
  assert.equal(d.session, 0xdeadbeef);
  assert.equal(d.seq, 41);
  assert.equal(d.total, 1000);
  assert.equal(d.sentAt, 1_764_000_000_123.456); // float64 keeps sub-millisecond precision
  assert.equal(d.id, 'pod-a');
  assert.equal(d.hello, false);
  assert.equal(d.listener, false);
  assert.ok(
    buf.subarray(FIXED_HEADER_BYTES + 5).every((b) => b === 0),
    'padding is zero',
  );
});

test('flags carry HELLO and LISTENER', () => {
  const d = decode(encode('x', 40, { session: 1, seq: 0, total: 0, sentAt: 1, flags: FLAG_HELLO | FLAG_LISTENER }));
  assert.ok(d.kind === 'probe' && d.hello && d.listener && !d.ready);
});

test('stamping a template rewrites only the per-datagram fields', () => {
  const t = makeTemplate('ü', 64);
  stamp(t, { session: 7, seq: 1, total: 2, sentAt: 3 });
  stamp(t, { session: 7, seq: 2, total: 2, sentAt: 4 });
  const d = decode(t);
  assert.ok(d.kind === 'probe');
  assert.deepEqual([d.seq, d.sentAt, d.id], [2, 4, 'ü']);
});

test('size below the header or id out of range is refused', () => {
  assert.equal(headerBytes('abc'), FIXED_HEADER_BYTES + 3);
  assert.throws(() => makeTemplate('abc', headerBytes('abc') - 1), /size 30 \(must be 31\.\./);
  assert.doesNotThrow(() => makeTemplate('abc', headerBytes('abc')));
  assert.throws(() => makeTemplate('', 64), /1\.\.64/);
  assert.throws(() => makeTemplate('x'.repeat(65), 200), /65 bytes/);
});

test('truncated or other-version probe datagrams decode as unknown', () => {
  const buf = encode('a', 64, { session: 1, seq: 1, total: 1, sentAt: 1 });
  assert.equal(decode(buf.subarray(0, 20)).kind, 'unknown');
  const v2 = Buffer.from(buf);
  v2.writeUInt8(2, 4);
  assert.deepEqual(decode(v2), { kind: 'unknown', reason: 'probe version 2' });
  const badId = Buffer.from(buf);
  badId.writeUInt8(60, 6);
  assert.equal(decode(badId.subarray(0, 40)).kind, 'unknown');
});

test('iperf2 datagrams decode with their id and send time', () => {
  const b = Buffer.alloc(64);
  b.writeInt32BE(17, 0);
  b.writeUInt32BE(1_764_000_000, 4);
  b.writeUInt32BE(250_000, 8);
  assert.deepEqual(decode(b), { kind: 'iperf2', seq: 17, sentAt: 1_764_000_000_250 });
  b.writeInt32BE(-18, 0);
  assert.deepEqual(decode(b), { kind: 'iperf2', seq: -18, sentAt: 1_764_000_000_250 });
  b.writeUInt32BE(2_000_000, 8); // impossible tv_usec: not iperf2
  assert.equal(decode(b).kind, 'unknown');
  assert.equal(decode(Buffer.alloc(5)).kind, 'unknown');
});

test('READY rides on HELLOs and on data alike, apart from the other flags', () => {
  const hello = decode(encode('x', 40, { session: 1, seq: 0, total: 5, sentAt: 1, flags: FLAG_HELLO | FLAG_READY }));
  assert.ok(hello.kind === 'probe' && hello.hello && hello.ready && !hello.listener);
  const data = decode(encode('x', 40, { session: 1, seq: 3, total: 5, sentAt: 1, flags: FLAG_READY }));
  assert.ok(data.kind === 'probe' && !data.hello && data.ready && data.seq === 3);
});
