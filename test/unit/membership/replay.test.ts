import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decode } from '../../../src/membership/codec.js';
import { PeerTable } from '../../../src/membership/peers.js';
import { ReplayGuard } from '../../../src/membership/replay.js';
import { CLUSTER, KEY1, MAC_A, T0, encoder, ok } from './helpers.js';

const INC_A = '00000000000000aa';
const INC_B = '00000000000000bb';

describe('replay guard', () => {
  it('refuses the same sequence number twice and one older than the window', () => {
    const g = new ReplayGuard({ seqWindow: 4 });
    assert.equal(g.admit('10.0.0.1', INC_A, 10, T0, T0), 'ok');
    assert.equal(g.admit('10.0.0.1', INC_A, 10, T0, T0), 'replay');
    assert.equal(g.admit('10.0.0.1', INC_A, 11, T0, T0), 'ok');
    assert.equal(g.admit('10.0.0.1', INC_A, 9, T0, T0), 'ok', 'reordered, inside the window, unseen');
    assert.equal(g.admit('10.0.0.1', INC_A, 9, T0, T0), 'replay');
    assert.equal(g.admit('10.0.0.1', INC_A, 20, T0, T0), 'ok');
    assert.equal(g.admit('10.0.0.1', INC_A, 16, T0, T0), 'replay', 'older than the window');
    assert.equal(g.admit('10.0.0.1', INC_A, 17, T0, T0), 'ok');
    assert.equal(g.admit('10.0.0.2', INC_A, 10, T0, T0), 'ok', 'per sender');
  });

  it('refuses timestamps outside the window, either way, with a configurable window', () => {
    const g = new ReplayGuard();
    assert.equal(g.admit('10.0.0.1', INC_A, 1, T0 - 30_001, T0), 'replay');
    assert.equal(g.admit('10.0.0.1', INC_A, 2, T0 + 30_001, T0), 'replay');
    assert.equal(g.admit('10.0.0.1', INC_A, 3, T0 - 30_000, T0), 'ok');
    const narrow = new ReplayGuard({ windowMs: 1000 });
    assert.equal(narrow.admit('10.0.0.1', INC_A, 1, T0 - 1001, T0), 'replay');
    assert.equal(narrow.admit('10.0.0.1', INC_A, 1, T0 - 1000, T0), 'ok');
  });

  it('accepts a new incarnation only with a newer timestamp, so an old one cannot come back', () => {
    const g = new ReplayGuard();
    assert.equal(g.admit('10.0.0.1', INC_A, 100, T0, T0), 'ok');
    assert.equal(g.admit('10.0.0.1', INC_A, 101, T0 + 1000, T0 + 1000), 'ok');
    assert.equal(g.admit('10.0.0.1', INC_B, 1, T0 + 1000, T0 + 1000), 'replay', 'not newer');
    assert.equal(g.admit('10.0.0.1', INC_B, 1, T0 + 2000, T0 + 2000), 'ok', 'the peer restarted');
    assert.equal(g.incarnationOf('10.0.0.1'), INC_B);
    // A recorded datagram of the old incarnation (still inside the timestamp window):
    assert.equal(g.admit('10.0.0.1', INC_A, 102, T0 + 1500, T0 + 2100), 'replay');
    assert.equal(g.admit('10.0.0.1', INC_B, 2, T0 + 2100, T0 + 2100), 'ok');
  });
});

describe('replay through decode and the peer table', () => {
  const state = { mac: MAC_A, overlay: '10.0.0.1', groups: ['239.1.1.1'] };

  it('rejects the same datagram received twice', () => {
    const table = new PeerTable({ selfIp: '10.0.0.9', expiryMs: 5000 });
    const dg = encoder('10.0.0.1').state(state, T0)[0] as Buffer;
    const msg = ok(decode(dg, { keys: [KEY1], cluster: CLUSTER }));
    assert.equal(table.receive(msg, '10.0.0.1', T0 + 10, { authenticated: true }).accepted, true);
    const again = ok(decode(dg, { keys: [KEY1], cluster: CLUSTER }));
    assert.deepEqual(table.receive(again, '10.0.0.1', T0 + 20, { authenticated: true }), {
      accepted: false,
      reason: 'replay',
      changed: false,
      isNew: false,
    });
  });

  it('rejects a replayed datagram of an old incarnation after the peer restarted', () => {
    const table = new PeerTable({ selfIp: '10.0.0.9', expiryMs: 5000 });
    const keys = { keys: [KEY1], cluster: CLUSTER };
    const oldDg = encoder('10.0.0.1', KEY1, INC_A).state(state, T0)[0] as Buffer;
    const laterOld = encoder('10.0.0.1', KEY1, INC_A).state({ ...state, groups: ['239.9.9.9'] }, T0 + 500);
    const newDg = encoder('10.0.0.1', KEY1, INC_B).state({ ...state, groups: ['239.2.2.2'] }, T0 + 1000)[0] as Buffer;
    assert.equal(table.receive(ok(decode(oldDg, keys)), '10.0.0.1', T0, { authenticated: true }).accepted, true);
    assert.equal(table.receive(ok(decode(newDg, keys)), '10.0.0.1', T0 + 1000, { authenticated: true }).accepted, true);
    const replayed = table.receive(ok(decode(laterOld[0] as Buffer, keys)), '10.0.0.1', T0 + 1100, { authenticated: true });
    assert.equal(replayed.reason, 'replay');
    assert.deepEqual(table.alive()[0]?.groups, ['239.2.2.2']);
    assert.equal(table.alive()[0]?.incarnation, INC_B);
  });
});

describe('replay guard: no lock-out by one message (timestamp ratchet)', () => {
  const INC_F = '00000000000000ff';
  it('refuses a timestamp further ahead of the local clock than maxAheadMs (default 5 s)', () => {
    const g = new ReplayGuard();
    assert.equal(g.admit('10.0.0.1', INC_A, 1, T0 + 5_001, T0), 'replay');
    assert.equal(g.admit('10.0.0.1', INC_A, 2, T0 + 5_000, T0), 'ok');
    const tight = new ReplayGuard({ maxAheadMs: 100 });
    assert.equal(tight.admit('10.0.0.1', INC_A, 1, T0 + 101, T0), 'replay');
  });

  it('a forged incarnation from the future, repeated, never locks out the live one', () => {
    const g = new ReplayGuard();
    let seq = 1;
    assert.equal(g.admit('10.0.0.1', INC_A, seq++, T0, T0), 'ok');
    for (let now = T0 + 100; now < T0 + 60_000; now += 100) {
      g.admit('10.0.0.1', INC_F, 1 + (now - T0), now + 4_900, now); // as far ahead as allowed
      // The live sender's heartbeat, sent after that forged datagram arrived:
      if ((now - T0) % 1000 === 0) assert.equal(g.admit('10.0.0.1', INC_A, seq++, now + 1, now + 1), 'ok', `genuine heartbeat at +${now - T0} ms`);
    }
  });

  it('a forged huge sequence number does not lock out the live incarnation', () => {
    const g = new ReplayGuard();
    assert.equal(g.admit('10.0.0.1', INC_A, 10, T0, T0), 'ok');
    assert.equal(g.admit('10.0.0.1', INC_A, 2 ** 50, T0 + 4_000, T0 + 10), 'ok');
    assert.equal(g.admit('10.0.0.1', INC_A, 11, T0 + 1000, T0 + 1000), 'ok', 'the next genuine datagram, newer in time');
    assert.equal(g.admit('10.0.0.1', INC_A, 11, T0 + 1000, T0 + 1001), 'replay', 'still refused twice');
  });

  it('through the peer table: the live peer keeps its groups across forged incarnations', () => {
    const table = new PeerTable({ selfIp: '10.0.0.9', expiryMs: 5000 });
    const keys = { keys: [KEY1], cluster: CLUSTER };
    const live = encoder('10.0.0.1', KEY1, INC_A);
    const forger = encoder('10.0.0.1', KEY1, INC_F);
    const st = { mac: MAC_A, overlay: '10.0.0.1', groups: ['239.1.1.1'] };
    for (let i = 0; i < 30; i++) {
      const now = T0 + i * 1000;
      for (const dg of forger.state({ ...st, groups: ['239.6.6.6'] }, now + 4_900)) table.receive(ok(decode(dg, keys)), '10.0.0.1', now, { authenticated: true });
      for (const dg of live.state(st, now + 1)) assert.equal(table.receive(ok(decode(dg, keys)), '10.0.0.1', now + 1, { authenticated: true }).accepted, true, `heartbeat ${i}`);
      assert.deepEqual(table.alive()[0]?.groups, ['239.1.1.1']);
    }
  });
});
