import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decode } from '../../../src/membership/codec.js';
import type { Encoder, LocalState } from '../../../src/membership/codec.js';
import { PeerTable } from '../../../src/membership/peers.js';
import type { ReceiveResult } from '../../../src/membership/peers.js';
import { CLUSTER, KEY1, MAC_A, MAC_B, T0, encoder, groups, ok } from './helpers.js';

const SELF = '10.0.0.9';
const A = '10.0.0.1';
const B = '10.0.0.2';
const stateA: LocalState = { mac: MAC_A, overlay: A, groups: ['239.1.1.1'] };

function table(expiryMs = 5000): PeerTable {
  return new PeerTable({ selfIp: SELF, expiryMs });
}

/** Decodes and applies datagrams in order; returns each result. */
function deliver(t: PeerTable, dgs: readonly Buffer[], src: string, now: number, keyed = true): ReceiveResult[] {
  return dgs.map((dg) => {
    const msg = ok(decode(dg, { keys: keyed ? [KEY1] : [], cluster: CLUSTER }));
    return t.receive(msg, src, now, { authenticated: msg.authenticated });
  });
}

function heartbeat(enc: Encoder, t: PeerTable, src: string, now: number, state: LocalState = stateA, keyed = true): ReceiveResult[] {
  return deliver(t, enc.state(state, now), src, now, keyed);
}

describe('peer table: admission', () => {
  it('admits an unlisted peer at once on a valid authenticated STATE (fast join)', () => {
    const t = table();
    const [r] = heartbeat(encoder(A), t, A, T0);
    assert.deepEqual(r, { accepted: true, changed: true, isNew: true });
    assert.deepEqual(
      t.alive().map((p) => [p.ip, p.mac, p.overlayAddr, p.groups, p.lastSeen]),
      [[A, MAC_A, A, ['239.1.1.1'], T0]],
    );
    assert.deepEqual(t.status(), [{ ip: A, state: 'alive', lastSeen: new Date(T0).toISOString(), groups: ['239.1.1.1'], sources: ['control'] }]);
  });

  it('without a key believes only listed source addresses (unknown_peer otherwise)', () => {
    const t = table();
    const enc = encoder(A, null);
    assert.deepEqual(heartbeat(enc, t, A, T0, stateA, false), [{ accepted: false, reason: 'unknown_peer', changed: false, isNew: false }]);
    assert.deepEqual(t.status(), []);
    t.setListed('static', [A]);
    assert.deepEqual(
      t.status().map((p) => [p.ip, p.state, p.sources]),
      [[A, 'pending', ['static']]],
    );
    assert.deepEqual(heartbeat(enc, t, A, T0 + 1, stateA, false), [{ accepted: true, changed: true, isNew: true }], 'listed now');
    assert.equal(t.isAlive(A), true);
  });

  it('rejects a message whose sender is not the datagram source (spoofed), with or without a key', () => {
    const t = table();
    t.setListed('dns', [A]);
    assert.equal(heartbeat(encoder(A), t, B, T0)[0]?.reason, 'spoofed');
    assert.equal(heartbeat(encoder(A, null), t, B, T0, stateA, false)[0]?.reason, 'spoofed');
    assert.deepEqual(
      t.status().map((p) => p.state),
      ['pending'],
    );
  });

  it('never lists or believes its own IP', () => {
    const t = table();
    t.setListed('dns', [SELF, A]);
    t.setListed('static', [SELF]);
    assert.deepEqual(
      t.status().map((p) => p.ip),
      [A],
    );
    assert.equal(heartbeat(encoder(SELF), t, SELF, T0)[0]?.reason, 'unknown_peer');
    assert.deepEqual(t.targets(), [A]);
  });

  it('keeps a listed but silent peer pending: a target for our STATE, not replicated to', () => {
    const t = table();
    t.setListed('dns', [B, A]);
    assert.deepEqual(t.alive(), []);
    assert.deepEqual(t.targets(), [A, B]);
    assert.deepEqual(
      t.status().map((p) => [p.ip, p.state, p.lastSeen]),
      [
        [A, 'pending', null],
        [B, 'pending', null],
      ],
    );
  });

  it('merges sources and drops a never-heard peer when no list has it any more', () => {
    const t = table();
    t.setListed('dns', [A, B]);
    t.setListed('static', [A]);
    assert.deepEqual(
      t.status().map((p) => [p.ip, p.sources]),
      [
        [A, ['dns', 'static']],
        [B, ['dns']],
      ],
    );
    t.setListed('dns', []);
    assert.deepEqual(
      t.status().map((p) => [p.ip, p.sources]),
      [[A, ['static']]],
    );
    assert.throws(() => t.setListed('dns', ['not-an-ip']), TypeError);
  });
});

describe('peer table: state', () => {
  it('reports changes only when groups, MAC, overlay or aliveness change', () => {
    const t = table();
    const enc = encoder(A);
    assert.equal(heartbeat(enc, t, A, T0)[0]?.changed, true);
    assert.deepEqual(heartbeat(enc, t, A, T0 + 1000)[0], { accepted: true, changed: false, isNew: false }, 'a plain heartbeat');
    assert.equal(heartbeat(enc, t, A, T0 + 2000, { ...stateA, groups: ['239.1.1.1', '239.3.3.3'] })[0]?.changed, true);
    assert.equal(heartbeat(enc, t, A, T0 + 3000, { ...stateA, groups: ['239.1.1.1', '239.3.3.3'], mac: MAC_B })[0]?.changed, true);
    assert.equal(heartbeat(enc, t, A, T0 + 4000, { ...stateA, groups: ['239.3.3.3', '239.1.1.1'], mac: MAC_B, overlay: '100.64.0.1' })[0]?.changed, true);
    assert.deepEqual(t.alive()[0]?.groups, ['239.1.1.1', '239.3.3.3']);
    assert.equal(t.alive()[0]?.overlayAddr, '100.64.0.1');
  });

  it('applies a multi-datagram STATE only when complete, whatever the order, and replaces the group set', () => {
    const t = table();
    const enc = encoder(A);
    const big = enc.state({ ...stateA, groups: groups(1000) }, T0);
    assert.ok(big.length >= 4);
    const order = [2, 0, 3, ...big.keys()].filter((v, i, all) => all.indexOf(v) === i);
    const [first, ...rest] = order.map((i) => big[i] as Buffer);
    assert.deepEqual(deliver(t, [first as Buffer], A, T0), [{ accepted: true, changed: true, isNew: true }], 'first part: alive');
    assert.deepEqual(t.alive()[0]?.groups, [], 'no groups before the STATE is complete');
    const results = deliver(t, rest, A, T0);
    assert.ok(
      results.slice(0, -1).every((r) => r.accepted && !r.changed),
      'middle parts change nothing',
    );
    assert.deepEqual(results.at(-1), { accepted: true, changed: true, isNew: false }, 'last part applies the set');
    assert.equal(t.alive()[0]?.groups.length, 1000);

    // A later STATE that loses one datagram does not shrink the set to a fraction...
    const lossy = enc.state({ ...stateA, groups: groups(1000, 1000) }, T0 + 1000);
    deliver(t, lossy.slice(1), A, T0 + 1000);
    assert.equal(t.alive()[0]?.groups.length, 1000);
    assert.deepEqual(new Set(t.alive()[0]?.groups), new Set(groups(1000)));
    // ...and the next complete one replaces it.
    heartbeat(enc, t, A, T0 + 2000, { ...stateA, groups: ['239.5.5.5'] });
    assert.deepEqual(t.alive()[0]?.groups, ['239.5.5.5']);
    // A straggler part of the lost STATE is stale now.
    assert.deepEqual(deliver(t, lossy.slice(0, 1), A, T0 + 2001)[0], { accepted: true, changed: false, isNew: false });
    assert.deepEqual(t.alive()[0]?.groups, ['239.5.5.5']);
  });

  it('marks a peer left at once on LEAVE, and back only with a newer STATE', () => {
    const t = table();
    t.setListed('dns', [A]);
    const enc = encoder(A);
    heartbeat(enc, t, A, T0);
    const delayed = enc.state(stateA, T0 + 50); // sent before the LEAVE, arrives after it
    assert.deepEqual(deliver(t, [enc.leave(T0 + 100)], A, T0 + 100), [{ accepted: true, changed: true, isNew: false }]);
    assert.deepEqual(t.alive(), []);
    assert.deepEqual(
      t.status().map((p) => [p.state, p.groups]),
      [['left', []]],
    );
    assert.deepEqual(deliver(t, delayed, A, T0 + 120), [{ accepted: true, changed: false, isNew: false }]);
    assert.deepEqual(t.alive(), [], 'an older STATE does not undo the LEAVE');
    assert.deepEqual(heartbeat(enc, t, A, T0 + 200), [{ accepted: true, changed: true, isNew: true }]);
    assert.equal(t.isAlive(A), true);
    // The peer restarts: a new incarnation is taken as it comes.
    deliver(t, [enc.leave(T0 + 300)], A, T0 + 300);
    heartbeat(encoder(A), t, A, T0 + 400);
    assert.equal(t.isAlive(A), true);
  });

  it('expires a peer silent for longer than the configured expiry and returns it once', () => {
    const t = table(3000);
    const enc = encoder(A);
    heartbeat(enc, t, A, T0);
    heartbeat(encoder(B), t, B, T0 + 2000, { mac: MAC_B, overlay: B, groups: [] });
    assert.deepEqual(t.expire(T0 + 3000), []);
    assert.deepEqual(t.expire(T0 + 3001), [A]);
    assert.deepEqual(t.expire(T0 + 3002), [], 'reported once');
    assert.deepEqual(
      t.alive().map((p) => p.ip),
      [B],
    );
    assert.deepEqual(
      t.status().map((p) => [p.ip, p.state, p.groups.length]),
      [
        [A, 'expired', 0],
        [B, 'alive', 0],
      ],
    );
    assert.deepEqual(heartbeat(enc, t, A, T0 + 4000)[0], { accepted: true, changed: true, isNew: true }, 'comes back when heard again');
  });

  for (const keyed of [true, false]) {
    it(`keeps a peer that dropped out of DNS alive while it keeps talking (${keyed ? 'with' : 'without'} a key)`, () => {
      const t = table(5000);
      t.setListed('dns', [A]);
      const enc = encoder(A, keyed ? KEY1 : null);
      heartbeat(enc, t, A, T0, stateA, keyed);
      t.setListed('dns', []);
      for (let s = 1; s <= 20; s++) {
        const now = T0 + s * 1000;
        assert.equal(heartbeat(enc, t, A, now, stateA, keyed)[0]?.accepted, true, `heartbeat ${s}`);
        assert.deepEqual(t.expire(now), []);
      }
      assert.deepEqual(
        t.alive().map((p) => p.ip),
        [A],
      );
      // Silent now: only the expiry removes it, and being unlisted it is forgotten later.
      assert.deepEqual(t.expire(T0 + 26_000), [A]);
      if (!keyed) assert.equal(heartbeat(enc, t, A, T0 + 26_500, stateA, keyed)[0]?.reason, 'unknown_peer', 'no longer believed');
      t.expire(T0 + 26_000 + t.forgetAfterMs + 1);
      assert.deepEqual(t.status(), []);
    });
  }
});

describe('peer table: bounded state per sender', () => {
  it('admits at most maxControlPeers senders by key alone, and counts the refusals', () => {
    const t = new PeerTable({ selfIp: SELF, expiryMs: 5000, maxControlPeers: 3 });
    t.setListed('dns', ['10.1.0.100']);
    const results = Array.from({ length: 10 }, (_, i) => heartbeat(encoder(`10.1.0.${i + 1}`), t, `10.1.0.${i + 1}`, T0, { mac: MAC_A, overlay: `10.1.0.${i + 1}`, groups: [] })[0]!);
    assert.deepEqual(
      results.map((r) => r.accepted),
      [true, true, true, false, false, false, false, false, false, false],
    );
    assert.equal(results[3]?.reason, 'too_many_peers');
    assert.equal(t.limits().controlPeersRefused, 7);
    assert.equal(t.size, 4, '3 admitted by key and the DNS-listed one: nothing recorded for the refused');
    assert.equal(heartbeat(encoder('10.1.0.100'), t, '10.1.0.100', T0)[0]?.accepted, true, 'a listed peer is never refused by that bound');
  });

  it('keeps at most maxGroupsPerPeer groups per peer (the MDB entries towards it), counted', () => {
    const t = new PeerTable({ selfIp: SELF, expiryMs: 5000, maxGroupsPerPeer: 500 });
    heartbeat(encoder(A), t, A, T0, { mac: MAC_A, overlay: A, groups: groups(1200) });
    assert.equal(t.alive()[0]?.groups.length, 500);
    assert.equal(t.limits().groupsTruncated, 700);
    assert.deepEqual(t.status()[0]?.groupsTruncated, 700);
  });

  it('reports a restart (new incarnation) and forgets incarnations with the peer', () => {
    const t = table(1000);
    assert.equal(heartbeat(encoder(A, KEY1, '00000000000000a1'), t, A, T0)[0]?.restarted, undefined, 'first contact is new, not a restart');
    assert.equal(heartbeat(encoder(A, KEY1, '00000000000000a2'), t, A, T0 + 10)[0]?.restarted, true);
    t.expire(T0 + 2000);
    t.expire(T0 + 2000 + t.forgetAfterMs + 1);
    assert.equal(t.size, 0);
    assert.equal(t.replaySize, 0, 'replay state forgotten with the peer');
  });
});

describe('peer table: starvation does not expire live peers', () => {
  const PA = '10.0.0.1';
  it('a listed peer silent past the expiry is suspect, keeps its entries, and is removed only after listedExpiryMs', () => {
    const t = new PeerTable({ selfIp: SELF, expiryMs: 5000, listedExpiryMs: 15_000 });
    t.setListed('dns', [PA]);
    heartbeat(encoder(PA), t, PA, T0);
    assert.deepEqual(t.expire(T0 + 6000), []);
    assert.equal(t.isAlive(PA), true);
    assert.deepEqual(
      t.alive().map((p) => p.groups),
      [['239.1.1.1']],
    );
    assert.deepEqual(
      t.status().map((p) => [p.state, p.suspect]),
      [['alive', true]],
    );
    assert.deepEqual(t.expire(T0 + 15_001), [PA], 'a crashed peer is still purged');
    assert.equal(t.isAlive(PA), false);
  });

  it('an unlisted (control-admitted) peer still goes at the expiry; a LEAVE still applies at once', () => {
    const t = new PeerTable({ selfIp: SELF, expiryMs: 5000, listedExpiryMs: 15_000 });
    heartbeat(encoder(PA), t, PA, T0);
    assert.deepEqual(t.expire(T0 + 5001), [PA]);
    t.setListed('dns', [B]);
    const enc = encoder(B);
    heartbeat(enc, t, B, T0 + 6000, { mac: MAC_B, overlay: B, groups: [] });
    deliver(t, [enc.leave(T0 + 6100)], B, T0 + 6100);
    assert.equal(t.isAlive(B), false);
  });

  it("time the receiver itself was not running (a stalled event loop) does not count as the peer's silence", () => {
    const t = new PeerTable({ selfIp: SELF, expiryMs: 5000, tickMs: 250 });
    heartbeat(encoder(PA), t, PA, T0);
    for (let now = T0; now <= T0 + 2000; now += 250) assert.deepEqual(t.expire(now), []);
    // Starved for 8 s: the first tick after it runs before the queued datagrams are read.
    assert.deepEqual(t.expire(T0 + 10_000), [], 'no expiry on the tick that ends a stall');
    assert.deepEqual(t.expire(T0 + 10_250), [], 'the stall is not counted as silence');
    assert.equal(t.isAlive(PA), true);
    for (let now = T0 + 10_500; now <= T0 + 12_750; now += 250) assert.deepEqual(t.expire(now), [], `+${now - T0} ms`);
    assert.deepEqual(t.expire(T0 + 13_000), [PA], 'real silence after the stall still expires it (5 s of it: 7.75 s of the 8 s gap did not count)');
  });
});

describe('peer table: IPv6 node addresses (node mode on an IPv6 underlay)', () => {
  const N1 = 'fd00:172:31:1::2';
  const N2 = 'fd00:172:31:2::2';
  it('lists IPv6 peers, leaves itself out, and takes a keyless STATE from a listed IPv6 source', () => {
    const t = new PeerTable({ selfIp: N1, expiryMs: 5000 });
    t.setListed('dns', [N2, N1]);
    assert.deepEqual(t.targets(), [N2]);
    const state: LocalState = { mac: '00:00:00:00:00:00', overlay: '0.0.0.0', groups: ['ff05::1:3'] };
    const msgs = encoder(N2, null).state(state, T0);
    const r = msgs.map((dg) => {
      const msg = ok(decode(dg, { keys: [], cluster: CLUSTER }));
      return t.receive(msg, N2, T0, { authenticated: msg.authenticated });
    });
    assert.deepEqual(r, [{ accepted: true, changed: true, isNew: true }]);
    assert.deepEqual(
      t.alive().map((p) => [p.ip, p.groups]),
      [[N2, ['ff05::1:3']]],
    );
  });

  it('refuses a non-canonical or non-unicast IPv6 address: the codec and the socket speak RFC 5952 text', () => {
    const t = new PeerTable({ selfIp: N1, expiryMs: 5000 });
    for (const bad of ['FD00:172:31:2::2', 'fd00:172:31:2:0:0:0:2', 'fe80::1', 'ff05::1:3', '::1']) {
      assert.throws(() => t.setListed('static', [bad]), /not a unicast IPv4 or canonical IPv6 address/, bad);
    }
  });
});
