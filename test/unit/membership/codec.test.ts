import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MAX_DATAGRAM, Encoder, FIXED_HEADER_SIZE, MAC_SIZE, MAX_LABEL_BYTES, MAX_PARTS, clusterLabel, decode, encodeMessage, joinParts } from '../../../src/membership/codec.js';
import type { ControlMessage, DecodeFailure, MessageFields } from '../../../src/membership/codec.js';
import { compareIpv4 } from '../../../src/net/ipv4.js';
import { CLUSTER, KEY1, KEY2, MAC_A, T0, WRONG_KEY, encoder, groups, ok, prng } from './helpers.js';

const keyed = { keys: [KEY1], cluster: CLUSTER };
const open = { keys: [], cluster: CLUSTER };

function shuffle<T>(items: T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('codec: round trip', () => {
  it('decodes a signed STATE into exactly the fields that were sent', () => {
    const enc = encoder('10.0.0.1', KEY1, '0123456789abcdef');
    const [dg, ...rest] = enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: ['239.2.2.2', '239.1.1.1'] }, T0);
    assert.equal(rest.length, 0);
    const msg = ok(decode(dg as Buffer, keyed));
    assert.deepEqual(msg, {
      type: 'state',
      version: 1,
      sender: '10.0.0.1',
      incarnation: '0123456789abcdef',
      seq: 1,
      timestamp: T0,
      mac: MAC_A,
      overlay: '10.0.0.1',
      part: 0,
      parts: 1,
      groups: ['239.1.1.1', '239.2.2.2'],
      cluster: CLUSTER,
      authenticated: true,
      keyIndex: 0,
    } satisfies ControlMessage);
  });

  it('round-trips an unsigned STATE and a LEAVE, marked unauthenticated', () => {
    const enc = encoder('10.1.2.3', null);
    const state = ok(decode(enc.state({ mac: MAC_A, overlay: '100.64.0.7', groups: [] }, T0)[0] as Buffer, open));
    assert.equal(state.authenticated, false);
    assert.equal(state.keyIndex, -1);
    assert.deepEqual(state.groups, []);
    assert.equal(state.overlay, '100.64.0.7');
    const leave = ok(decode(enc.leave(T0 + 5), open));
    assert.equal(leave.type, 'leave');
    assert.equal(leave.seq, state.seq + 1);
    assert.equal(leave.timestamp, T0 + 5);
  });

  it('splits a STATE of 1,000 groups into datagrams of at most 1400 bytes and reassembles it in any order', () => {
    const enc = encoder('10.0.0.1');
    const want = groups(1000);
    const dgs = enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: shuffle(want, prng(7)) }, T0);
    assert.ok(dgs.length > 1, 'more than one datagram');
    assert.equal(dgs.length, Math.ceil(1000 / enc.groupsPerDatagram));
    for (const dg of dgs) assert.ok(dg.length <= DEFAULT_MAX_DATAGRAM, `${dg.length} bytes`);
    const msgs = shuffle(dgs, prng(3)).map((dg) => ok(decode(dg, keyed)));
    const sorted = [...msgs].sort((a, b) => a.part - b.part);
    sorted.forEach((m, i) => {
      assert.equal(m.part, i);
      assert.equal(m.parts, dgs.length);
      assert.equal(m.seq, 1 + i, 'consecutive sequence numbers');
    });
    const joined = joinParts(msgs);
    assert.ok(joined);
    assert.equal(joined.length, 1000);
    assert.deepEqual(new Set(joined), new Set(want));
    assert.equal(joinParts(msgs.slice(1)), null, 'a missing part leaves the STATE incomplete');
  });

  it('refuses to join parts of two different STATEs', () => {
    const enc = encoder('10.0.0.1');
    const first = enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: groups(600) }, T0).map((d) => ok(decode(d, keyed)));
    const second = enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: groups(600) }, T0).map((d) => ok(decode(d, keyed)));
    assert.equal(joinParts([first[0] as ControlMessage, second[1] as ControlMessage]), null);
  });

  it('gives every datagram a higher sequence number than the one before', () => {
    const enc = encoder('10.0.0.1');
    const seqs = [...enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: groups(700) }, T0), enc.leave(T0), ...enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: [] }, T0)].map(
      (d) => ok(decode(d, keyed)).seq,
    );
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => seqs[0]! + i),
    );
  });

  it('leaves out link-local groups and duplicates, refuses non-multicast addresses', () => {
    const enc = encoder('10.0.0.1');
    const msg = ok(decode(enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: ['224.0.0.251', '239.1.1.1', '239.1.1.1', '224.0.1.1'] }, T0)[0] as Buffer, keyed));
    assert.deepEqual(msg.groups, ['224.0.1.1', '239.1.1.1']);
    assert.throws(() => enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: ['10.1.1.1'] }, T0), /not a multicast group/);
  });

  it('refuses a STATE that would need more than the part limit, and a datagram size that holds no group', () => {
    const enc = new Encoder({ sender: '10.0.0.1', cluster: CLUSTER, key: KEY1, maxDatagram: 200 });
    const tooMany = groups(enc.groupsPerDatagram * MAX_PARTS + 1);
    assert.throws(() => enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: tooMany }, T0), RangeError);
    assert.throws(() => new Encoder({ sender: '10.0.0.1', cluster: CLUSTER, key: KEY1, maxDatagram: 100 }), RangeError);
  });

  it('keeps a cluster label within the field for any service name', () => {
    assert.equal(clusterLabel('svc', 4242), '4242/svc');
    const long = clusterLabel('x'.repeat(300), 7);
    assert.ok(Buffer.byteLength(long) <= MAX_LABEL_BYTES);
    assert.notEqual(long, clusterLabel('y'.repeat(300), 7));
  });
});

describe('codec: rejection', () => {
  const enc = encoder('10.0.0.1', KEY1);
  const state = { mac: MAC_A, overlay: '10.0.0.1', groups: ['239.1.0.1', '239.1.0.2', '239.1.0.3'] };
  const valid = enc.state(state, T0)[0] as Buffer;

  it('rejects a datagram signed with a key the receiver does not have (forged): bad_mac', () => {
    const forged = encoder('10.0.0.1', WRONG_KEY).state(state, T0)[0] as Buffer;
    assert.deepEqual(decode(forged, keyed), { ok: false, reason: 'bad_mac' });
  });

  it('rejects an unsigned datagram when a key is set: bad_mac', () => {
    const unsigned = encoder('10.0.0.1', null).state(state, T0)[0] as Buffer;
    assert.deepEqual(decode(unsigned, keyed), { ok: false, reason: 'bad_mac' });
    assert.equal(ok(decode(unsigned, open)).authenticated, false);
  });

  it('verifies a message signed by key 2 at a receiver holding keys 1 and 2 (rotation)', () => {
    const signedBy2 = encoder('10.0.0.1', KEY2).state(state, T0)[0] as Buffer;
    const msg = ok(decode(signedBy2, { keys: [KEY1, KEY2], cluster: CLUSTER }));
    assert.equal(msg.authenticated, true);
    assert.equal(msg.keyIndex, 1);
    assert.deepEqual(decode(signedBy2, { keys: [KEY1], cluster: CLUSTER }), { ok: false, reason: 'bad_mac' });
  });

  it('rejects another overlay: wrong_cluster', () => {
    assert.deepEqual(decode(valid, { keys: [KEY1], cluster: '4243/mcast-app.default.svc.cluster.local' }), { ok: false, reason: 'wrong_cluster' });
  });

  it('rejects another protocol version: unsupported_version', () => {
    const v2 = Buffer.from(valid);
    v2[4] = 3;
    assert.deepEqual(decode(v2, keyed), { ok: false, reason: 'unsupported_version', version: 3 });
  });

  it('rejects every truncation of a valid datagram and an extended one: malformed', () => {
    for (let len = 0; len < valid.length; len++) {
      assert.deepEqual(decode(valid.subarray(0, len), keyed), { ok: false, reason: 'malformed' }, `prefix of ${len} bytes`);
      assert.deepEqual(decode(valid.subarray(0, len), open), { ok: false, reason: 'malformed' }, `prefix of ${len} bytes, no key`);
    }
    assert.deepEqual(decode(Buffer.concat([valid, Buffer.from([0])]), keyed), { ok: false, reason: 'malformed' });
  });

  it('rejects every single-bit flip with the reason of the field it hit', () => {
    const labelLength = Buffer.byteLength(CLUSTER);
    const groupsAt = FIXED_HEADER_SIZE + labelLength;
    const trailerAt = valid.length - MAC_SIZE;
    /** The reason a flip of `bit` in byte `at` must produce, from the byte table in docs/protocol.md. */
    const expected = (at: number, bit: number): DecodeFailure | readonly DecodeFailure[] => {
      if (at < 4) return 'malformed'; // magic
      if (at === 4) return 'unsupported_version';
      if (at < 8) return 'malformed'; // type, flags, reserved
      if (at < 16) return 'bad_mac'; // incarnation
      if (at === 16 || at === 24) return 'malformed'; // seq/timestamp above 2^53
      if (at === 17 || at === 25) return bit >= 5 ? 'malformed' : 'bad_mac';
      if (at === 40 && bit === 0) return 'malformed'; // the MAC's group bit: a STATE's MAC must be unicast
      if (at < 46) return 'bad_mac'; // rest of seq, timestamp, sender, overlay, MAC
      if (at < 48) return 'malformed'; // part index beyond the part count
      if (at < 50) return ['malformed', 'bad_mac']; // part count: 0 or > 64 malformed, else bad_mac
      if (at === 50) return 'malformed'; // label length no longer matches
      if (at < groupsAt) return bit === 7 ? 'malformed' : 'wrong_cluster'; // ASCII -> invalid UTF-8
      if (at < groupsAt + 2) return 'malformed'; // group count
      if (at < trailerAt) {
        const inGroup = (at - groupsAt - 2) % 4;
        if (inGroup === 0) return bit >= 4 ? 'malformed' : 'bad_mac'; // leaves 224.0.0.0/4
        return ['malformed', 'bad_mac']; // may turn into a duplicate group
      }
      return 'bad_mac'; // the HMAC itself
    };
    let checked = 0;
    for (let at = 0; at < valid.length; at++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = Buffer.from(valid);
        flipped[at] = (flipped[at] as number) ^ (1 << bit);
        const result = decode(flipped, keyed);
        assert.equal(result.ok, false, `flip of byte ${at} bit ${bit} accepted`);
        if (result.ok) continue;
        const want = expected(at, bit);
        if (typeof want === 'string') assert.equal(result.reason, want, `byte ${at} bit ${bit}`);
        else assert.ok(want.includes(result.reason), `byte ${at} bit ${bit}: ${result.reason}`);
        checked++;
      }
    }
    assert.equal(checked, valid.length * 8);
  });

  it('rejects structurally wrong messages built field by field: malformed', () => {
    const base: MessageFields = {
      type: 'leave',
      sender: '10.0.0.1',
      incarnation: '00000000000000aa',
      seq: 5,
      timestamp: T0,
      mac: MAC_A,
      overlay: '0.0.0.0',
      part: 0,
      parts: 1,
      groups: [],
      cluster: CLUSTER,
    };
    assert.equal(ok(decode(encodeMessage(base, KEY1), keyed)).type, 'leave');
    const cases: Array<[string, Partial<MessageFields>]> = [
      ['LEAVE with groups', { groups: ['239.1.1.1'] }],
      ['LEAVE in two parts', { parts: 2 }],
      ['sender 0.0.0.0', { sender: '0.0.0.0' }],
      ['multicast sender', { sender: '239.0.0.1' }],
      ['link-local group', { type: 'state', groups: ['224.0.0.251'] }],
      ['unicast group', { type: 'state', groups: ['10.9.9.9'] }],
      ['duplicate group', { type: 'state', groups: ['239.1.1.1', '239.1.1.1'] }],
    ];
    for (const [name, patch] of cases) {
      assert.deepEqual(decode(encodeMessage({ ...base, ...patch }, KEY1), keyed), { ok: false, reason: 'malformed' }, name);
    }
  });

  it('refuses a STATE whose overlay address or MAC is not unicast: malformed (both zero means none; a LEAVE may carry anything)', () => {
    const state: MessageFields = {
      type: 'state',
      sender: '10.0.0.1',
      incarnation: '00000000000000aa',
      seq: 5,
      timestamp: T0,
      mac: MAC_A,
      overlay: '10.0.0.1',
      part: 0,
      parts: 1,
      groups: ['239.1.1.1'],
      cluster: CLUSTER,
    };
    assert.equal(ok(decode(encodeMessage(state, KEY1), keyed)).overlay, '10.0.0.1');
    const cases: Array<[string, Partial<MessageFields>]> = [
      ['overlay 0.0.0.0', { overlay: '0.0.0.0' }],
      ['multicast overlay', { overlay: '224.0.0.1' }],
      ['broadcast overlay', { overlay: '255.255.255.255' }],
      ['class E overlay', { overlay: '240.0.0.1' }],
      ['all-zero MAC', { mac: '00:00:00:00:00:00' }],
      ['multicast MAC', { mac: '01:00:5e:00:00:01' }],
      ['broadcast MAC', { mac: 'ff:ff:ff:ff:ff:ff' }],
    ];
    for (const [name, patch] of cases) {
      assert.deepEqual(decode(encodeMessage({ ...state, ...patch }, KEY1), keyed), { ok: false, reason: 'malformed' }, name);
    }
    const none = ok(decode(encodeMessage({ ...state, mac: '00:00:00:00:00:00', overlay: '0.0.0.0' }, KEY1), keyed));
    assert.deepEqual([none.overlay, none.mac], ['0.0.0.0', '00:00:00:00:00:00'], 'both zero: no overlay endpoint announced (node mode)');
    const leave = { ...state, type: 'leave' as const, groups: [], mac: '00:00:00:00:00:00', overlay: '0.0.0.0' };
    assert.equal(ok(decode(encodeMessage(leave, KEY1), keyed)).type, 'leave');
  });

  it('caps the groups of one STATE at what fits the parts limit, instead of throwing', () => {
    const enc = encoder('10.0.0.1');
    const many = groups(25_000);
    assert.throws(() => enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: many }, T0), RangeError, 'state() keeps its contract');
    const capped = enc.stateCapped({ mac: MAC_A, overlay: '10.0.0.1', groups: many }, T0);
    assert.equal(capped.datagrams.length, Math.ceil(capped.announced / enc.groupsPerDatagram));
    assert.ok(capped.datagrams.length <= 64);
    assert.equal(capped.announced, Math.min(enc.maxGroups, 25_000));
    assert.equal(capped.dropped, 25_000 - capped.announced);
    assert.ok(capped.dropped > 0);
    const got = capped.datagrams.flatMap((dg) => ok(decode(dg, keyed)).groups);
    assert.deepEqual(got, many.slice().sort(compareIpv4).slice(0, capped.announced), 'the lowest groups, in numeric order');
  });

  it('never throws on arbitrary bytes', () => {
    const rand = prng(11);
    for (let i = 0; i < 2000; i++) {
      const buf = Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)));
      if (i % 2 === 0) Buffer.from('KMCP\x01').copy(buf);
      const result = decode(buf, keyed);
      assert.equal(result.ok, false);
    }
  });
});

describe('cluster label comparison', () => {
  it('compares raw bytes: a label with a leading UTF-8 BOM is another cluster', () => {
    const bom = new Encoder({ sender: '10.0.0.9', cluster: `\uFEFF${CLUSTER}`, key: KEY1 });
    const [buf] = bom.state({ mac: MAC_A, overlay: '10.0.0.9', groups: [] }, T0);
    const r = decode(buf as Buffer, keyed);
    assert.equal(r.ok, false);
    assert.deepEqual(r, { ok: false, reason: 'wrong_cluster' satisfies DecodeFailure });
    // The same message without the BOM is accepted.
    const plain = new Encoder({ sender: '10.0.0.9', cluster: CLUSTER, key: KEY1 });
    assert.equal(ok(decode(plain.state({ mac: MAC_A, overlay: '10.0.0.9', groups: [] }, T0)[0] as Buffer, keyed)).cluster, CLUSTER);
  });
});
