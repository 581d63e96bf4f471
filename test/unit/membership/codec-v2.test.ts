/** Version 2 of the control protocol: IPv6 groups and addresses beside IPv4 (docs/protocol.md). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Encoder, FIXED_HEADER_SIZE_V2, MAC_SIZE, MAX_PARTS, decode, encodeMessage, joinParts, versionFor } from '../../../src/membership/codec.js';
import type { ControlMessage, MessageFields } from '../../../src/membership/codec.js';
import { pino } from 'pino';
import { ControlSocket } from '../../../src/membership/control.js';
import { PeerTable } from '../../../src/membership/peers.js';
import { CLUSTER, KEY1, MAC_A, T0, encoder, groups, ok } from './helpers.js';

const keyed = { keys: [KEY1], cluster: CLUSTER };

/** `count` distinct routable IPv6 groups ff05::1:N. */
function groups6(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `ff05::1:${(i + 1).toString(16)}`);
}

describe('codec version 2', () => {
  it('keeps sending version 1 while everything is IPv4, so agents that read only 1 keep working', () => {
    const [dg] = encoder('10.0.0.1').state({ mac: MAC_A, overlay: '10.0.0.1', groups: ['239.1.1.1'] }, T0);
    assert.equal(dg![4], 1);
    assert.equal(versionFor('10.0.0.1', '0.0.0.0', ['239.1.1.1']), 1);
    assert.equal(versionFor('10.0.0.1', '0.0.0.0', ['ff05::1:3']), 2);
    assert.equal(versionFor('fd00::1', '0.0.0.0', []), 2);
  });

  it('carries IPv6 groups beside IPv4 ones, canonical, IPv4 first, link-local of both families left out', () => {
    const enc = encoder('10.0.0.1', KEY1, '0123456789abcdef');
    const [dg, ...rest] = enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: ['FF05:0::1:3', '239.1.1.1', 'ff02::fb', '224.0.0.251', 'ff0e::1', 'ff05::1:3'] }, T0);
    assert.equal(rest.length, 0);
    assert.equal(dg![4], 2);
    const label = Buffer.byteLength(CLUSTER);
    assert.equal(dg!.length, FIXED_HEADER_SIZE_V2 + label + 2 + 4 * 1 + 2 + 16 * 2 + MAC_SIZE);
    const msg = ok(decode(dg!, keyed));
    assert.deepEqual(
      { version: msg.version, sender: msg.sender, overlay: msg.overlay, mac: msg.mac, groups: msg.groups, authenticated: msg.authenticated },
      { version: 2, sender: '10.0.0.1', overlay: '10.0.0.1', mac: MAC_A, groups: ['239.1.1.1', 'ff05::1:3', 'ff0e::1'], authenticated: true },
    );
  });

  it('carries an IPv6 sender and overlay, and "none" as in version 1', () => {
    const enc = new Encoder({ sender: 'fd00:10::2', cluster: CLUSTER, key: KEY1 });
    const node = ok(decode(enc.state({ mac: '00:00:00:00:00:00', overlay: '0.0.0.0', groups: [] }, T0)[0]!, keyed));
    assert.deepEqual([node.version, node.sender, node.overlay, node.mac], [2, 'fd00:10::2', '0.0.0.0', '00:00:00:00:00:00']);
    const pod = ok(decode(enc.state({ mac: MAC_A, overlay: 'fd00:10::2', groups: [] }, T0)[0]!, keyed));
    assert.equal(pod.overlay, 'fd00:10::2');
    const leave = ok(decode(enc.leave(T0), keyed));
    assert.deepEqual([leave.type, leave.sender], ['leave', 'fd00:10::2']);
  });

  it('splits a big mixed set into datagrams under the size limit and joins it back whole', () => {
    const enc = encoder('10.0.0.1');
    const want = [...groups(500), ...groups6(700)];
    const dgs = enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: want }, T0);
    assert.ok(dgs.length > 1 && dgs.length <= MAX_PARTS);
    for (const d of dgs) assert.ok(d.length <= 1400, `${d.length} bytes`);
    const msgs = dgs.map((d) => ok(decode(d, keyed)));
    assert.equal(new Set(msgs.map((m) => m.version)).size, 1, 'one STATE, one version');
    assert.deepEqual(joinParts(msgs.reverse() as ControlMessage[]), [...groups(500), ...groups6(700)]);
  });

  it('caps a set too big for 64 datagrams at its lowest groups and says how many were left out', () => {
    const enc = encoder('10.0.0.1');
    const all = groups6(6000);
    const { datagrams, announced, dropped } = enc.stateCapped({ mac: MAC_A, overlay: '10.0.0.1', groups: all }, T0);
    assert.equal(datagrams.length, MAX_PARTS);
    assert.equal(announced + dropped, 6000);
    assert.ok(dropped > 0);
    const got = joinParts(datagrams.map((d) => ok(decode(d, keyed))))!;
    assert.equal(got.length, announced);
    assert.throws(() => enc.state({ mac: MAC_A, overlay: '10.0.0.1', groups: all }, T0), /more than the limit/);
  });

  const fields: MessageFields = {
    type: 'state',
    sender: 'fd00::1',
    incarnation: '0123456789abcdef',
    seq: 5,
    timestamp: T0,
    mac: MAC_A,
    overlay: 'fd00::1',
    part: 0,
    parts: 1,
    groups: ['239.1.1.1', 'ff05::1:3'],
    cluster: CLUSTER,
  };
  const valid = encodeMessage(fields, KEY1);
  const groupAt = valid.length - MAC_SIZE - 16;

  it('refuses every truncation and an extension: malformed', () => {
    for (let n = 0; n < valid.length; n++) assert.equal((decode(valid.subarray(0, n), keyed) as { reason: string }).reason, 'malformed', `${n} bytes`);
    assert.equal((decode(Buffer.concat([valid, Buffer.alloc(1)]), keyed) as { reason: string }).reason, 'malformed');
  });

  it('refuses IPv6 groups that must never be announced, and duplicates: malformed', () => {
    const open = { keys: [], cluster: CLUSTER };
    const last = (buf: Buffer, addr: string): Buffer => {
      const [hi, lo] = addr.split('::');
      const out = Buffer.from(buf);
      out.fill(0, out.length - 16);
      out.writeUInt16BE(parseInt(hi!, 16), out.length - 16);
      out.writeUInt16BE(parseInt(lo!, 16), out.length - 2);
      return out;
    };
    const unsigned = encodeMessage({ ...fields, groups: ['239.1.1.1', 'ff05::4'] });
    assert.equal(ok(decode(last(unsigned, 'ff05::5'), open)).groups[1], 'ff05::5', 'the baseline decodes');
    for (const bad of ['ff02::fb', 'ff01::1', 'ff00::1', 'ff0f::1', 'fd00::9']) assert.equal((decode(last(unsigned, bad), open) as { reason: string }).reason, 'malformed', bad);
    const two = encodeMessage({ ...fields, groups: ['ff05::3', 'ff05::4'] });
    assert.equal((decode(last(two, 'ff05::3'), open) as { reason: string }).reason, 'malformed', 'duplicate');
  });

  it('covers IPv6 groups and addresses with the HMAC: bad_mac', () => {
    for (const at of [groupAt + 15, 32 + 15, 48 + 15]) {
      const forged = Buffer.from(valid);
      forged[at] = forged[at]! ^ 1;
      assert.equal((decode(forged, keyed) as { reason: string }).reason, 'bad_mac', `byte ${at}`);
    }
  });

  it('refuses a version 2 sender or overlay that is no unicast address: malformed', () => {
    for (const [field, at] of [
      ['sender', 32],
      ['overlay', 48],
    ] as const) {
      const buf = Buffer.from(encodeMessage(fields));
      Buffer.from([0xff, 0x05, ...Array(13).fill(0), 1]).copy(buf, at);
      assert.equal((decode(buf, { keys: [], cluster: CLUSTER }) as { reason: string }).reason, 'malformed', field);
    }
    assert.throws(() => encodeMessage({ ...fields, groups: ['ff05::1:3'] }, undefined, 1), /for version 1/);
  });
});

describe('control socket: a peer speaking a version this agent cannot read', () => {
  it('is dropped, counted and logged once per sender, naming the fix', () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const s = new ControlSocket({
      address: '10.0.0.9',
      port: 0,
      keys: [KEY1],
      channels: [{ label: CLUSTER, table: new PeerTable({ selfIp: '10.0.0.9', expiryMs: 1000 }) }],
      logger,
      bindHints: { inUse: 'in use', notAvailable: 'not available', other: 'other' },
    });
    const v3 = Buffer.from(encoder('10.0.0.1').state({ mac: MAC_A, overlay: '10.0.0.1', groups: [] }, T0)[0]!);
    v3[4] = 3;
    for (let i = 0; i < 5; i++) assert.equal(s.handle(v3, { address: '10.0.0.1' }), 'unsupported_version');
    s.handle(v3, { address: '10.0.0.2' });
    assert.equal(s.counters.unsupported_version, 6);
    const warned = lines.map((l) => JSON.parse(l) as { msg: string; peer: string; version: number }).filter((l) => /cannot read/.test(l.msg));
    assert.deepEqual(
      warned.map((l) => [l.peer, l.version]),
      [
        ['10.0.0.1', 3],
        ['10.0.0.2', 3],
      ],
    );
    assert.match(warned[0]!.msg, /upgrade this agent/);
  });
});
