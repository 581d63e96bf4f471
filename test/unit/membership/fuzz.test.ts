/**
 * 100,000 random and mutated datagrams through `decode` and the peer table, from a fixed PRNG
 * seed (a failure reproduces): nothing throws, nothing is accepted, and the table is unchanged.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decode } from '../../../src/membership/codec.js';
import type { DecodeOptions } from '../../../src/membership/codec.js';
import { PeerTable } from '../../../src/membership/peers.js';
import { CLUSTER, KEY1, MAC_A, MAC_B, T0, encoder, groups, prng } from './helpers.js';

const SELF = '10.0.0.9';
const A = '10.0.0.1';
const B = '10.0.0.2';
const C = '10.0.0.3';
const ATTACKER = '10.0.0.66';
const COUNT = 100_000;

function snapshot(t: PeerTable): string {
  return JSON.stringify({ status: t.status(), alive: t.alive(), targets: t.targets() });
}

/** A table with a listed peer, a fast-joined peer with a 3-datagram STATE and a peer that left. */
function setup(keyed: boolean): { table: PeerTable; corpus: Buffer[]; opts: DecodeOptions } {
  const key = keyed ? KEY1 : null;
  const opts: DecodeOptions = { keys: keyed ? [KEY1] : [], cluster: CLUSTER };
  const table = new PeerTable({ selfIp: SELF, expiryMs: 60_000 });
  table.setListed('dns', [A, C]);
  if (!keyed) table.setListed('static', [B]);
  const encC = encoder(C, key);
  const corpus: Array<[Buffer, string]> = [
    ...encoder(A, key)
      .state({ mac: MAC_A, overlay: A, groups: ['239.1.1.1', '239.2.2.2'] }, T0)
      .map((d): [Buffer, string] => [d, A]),
    ...encoder(B, key)
      .state({ mac: MAC_B, overlay: B, groups: groups(1000) }, T0)
      .map((d): [Buffer, string] => [d, B]),
    ...encC.state({ mac: MAC_A, overlay: C, groups: [] }, T0).map((d): [Buffer, string] => [d, C]),
    [encC.leave(T0), C],
  ];
  for (const [dg, src] of corpus) {
    const d = decode(dg, opts);
    assert.ok(d.ok);
    assert.equal(table.receive(d.msg, src, T0, { authenticated: d.msg.authenticated }).accepted, true);
  }
  return { table, corpus: corpus.map(([dg]) => dg), opts };
}

function mutate(rand: () => number, corpus: readonly Buffer[]): Buffer {
  const pick = (): Buffer => corpus[Math.floor(rand() * corpus.length)] as Buffer;
  const byte = (): number => Math.floor(rand() * 256);
  const kind = Math.floor(rand() * 10);
  const base = Buffer.from(pick());
  switch (kind) {
    case 0: // pure noise of any size up to a jumbo datagram
      return Buffer.from(Array.from({ length: Math.floor(rand() * 1600) }, byte));
    case 1: {
      // a valid header followed by noise
      const out = Buffer.from(Array.from({ length: 51 + Math.floor(rand() * 400) }, byte));
      base.copy(out, 0, 0, Math.min(base.length, 51 + Math.floor(rand() * 60)));
      return out;
    }
    case 2: // truncated
      return base.subarray(0, Math.floor(rand() * base.length));
    case 3: // extended
      return Buffer.concat([base, Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 40) }, byte))]);
    case 4: {
      // spliced from two datagrams
      const other = pick();
      const cut = Math.floor(rand() * Math.min(base.length, other.length));
      return Buffer.concat([base.subarray(0, cut), other.subarray(cut)]);
    }
    case 5: // an exact copy: a replay
      return base;
    case 6: {
      // one field-sized overwrite in the header
      const at = Math.floor(rand() * Math.min(base.length, 60));
      for (let i = at; i < Math.min(base.length, at + 1 + Math.floor(rand() * 8)); i++) base[i] = byte();
      return base;
    }
    default: {
      // 1 to 8 bit flips anywhere
      const flips = 1 + Math.floor(rand() * 8);
      for (let i = 0; i < flips; i++) {
        const at = Math.floor(rand() * base.length);
        base[at] = (base[at] as number) ^ (1 << Math.floor(rand() * 8));
      }
      return base;
    }
  }
}

for (const keyed of [true, false]) {
  describe(`fuzz: decode + peer table ${keyed ? 'with a key' : 'without a key'}`, () => {
    it(`survives ${COUNT.toLocaleString('en')} random and mutated datagrams and leaves the table unchanged`, () => {
      const { table, corpus, opts } = setup(keyed);
      const before = snapshot(table);
      const rand = prng(keyed ? 0x6b6d63 : 0x736e6f);
      // With a key the forger may use any source; without one, it sends from its own address
      // (without a key a listed source address is all that is believed: nothing to prove there).
      const sources = keyed ? [A, B, C, ATTACKER] : [ATTACKER];
      const results: Record<string, number> = {};
      for (let i = 0; i < COUNT; i++) {
        const dg = mutate(rand, corpus);
        const src = sources[Math.floor(rand() * sources.length)] as string;
        const d = decode(dg, opts);
        const result = d.ok ? table.receive(d.msg, src, T0 + 1 + (i % 1000), { authenticated: d.msg.authenticated }) : undefined;
        const key = d.ok ? (result?.accepted ? 'accepted' : (result?.reason ?? '?')) : d.reason;
        results[key] = (results[key] ?? 0) + 1;
      }
      assert.equal(
        Object.values(results).reduce((a, b) => a + b, 0),
        COUNT,
      );
      assert.equal(results.accepted, undefined, `nothing accepted: ${JSON.stringify(results)}`);
      assert.equal(snapshot(table), before);
      // The corpus reaches every rejection path, so the test proves more than "decode says malformed".
      const expected = keyed ? ['malformed', 'bad_mac', 'replay', 'wrong_cluster', 'unsupported_version'] : ['malformed', 'unknown_peer', 'wrong_cluster', 'unsupported_version'];
      for (const reason of expected) assert.ok((results[reason] ?? 0) > 0, `${reason}: ${JSON.stringify(results)}`);
    });
  });
}
