/** Two real ControlChannels on loopback (127.0.0.1 and 127.0.0.2, different ports). */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { ConfigError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { bindControlSocket, ControlChannel } from '../../../src/membership/control.js';
import type { ControlCounters, ControlEvent } from '../../../src/membership/control.js';
import { Encoder, encodeMessage } from '../../../src/membership/codec.js';
import type { LocalState } from '../../../src/membership/codec.js';
import { PeerTable } from '../../../src/membership/peers.js';
import { CLUSTER, KEY1, KEY2, MAC_A, MAC_B, WRONG_KEY, groups } from './helpers.js';

const IP_A = '127.0.0.1';
const IP_B = '127.0.0.2';
const IP_X = '127.0.0.3';
const IP_C = '127.0.0.4';

async function bound(address: string, port = 0): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address, port }, () => resolve());
  });
  return s;
}

async function freePort(address: string, not?: number): Promise<number> {
  for (;;) {
    const s = await bound(address);
    const port = s.address().port;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    if (port !== not) return port;
  }
}

async function sendRaw(from: Socket, dg: Buffer, address: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => from.send(dg, port, address, (err) => (err ? reject(err) : resolve())));
}

/** Waits for a condition (delivery on loopback); fails with `what` if it never holds. Not a timing assertion. */
async function until(what: string, cond: () => boolean, limitMs = 5000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function total(c: Readonly<ControlCounters>): number {
  return Object.values(c).reduce((a, b) => a + b, 0);
}

describe('control channel over loopback', () => {
  let portA = 0;
  let portB = 0;
  let tableA: PeerTable;
  let tableB: PeerTable;
  let a: ControlChannel;
  let b: ControlChannel;
  const eventsB: ControlEvent[] = [];
  const stateA: LocalState = { mac: MAC_A, overlay: IP_A, groups: groups(1000) };
  const stateB: LocalState = { mac: MAC_B, overlay: IP_B, groups: ['239.7.7.7'] };
  const raw: Socket[] = [];

  before(async () => {
    portA = await freePort(IP_A);
    portB = await freePort(IP_B, portA);
    tableA = new PeerTable({ selfIp: IP_A, expiryMs: 5000 });
    tableB = new PeerTable({ selfIp: IP_B, expiryMs: 5000 });
    const common = { cluster: CLUSTER, keys: [KEY1], logger: silentLogger() };
    a = new ControlChannel({ ...common, address: IP_A, port: portA, peerPort: portB, table: tableA });
    b = new ControlChannel({ ...common, address: IP_B, port: portB, peerPort: portA, table: tableB });
    await a.start();
    await b.start();
    // The agent's wiring in miniature: a peer we did not know gets our STATE at once.
    b.onMessage((ev) => {
      eventsB.push(ev);
      if (ev.result.isNew) void b.sendState([ev.from.address], stateB);
    });
    b.onMessage(() => {
      throw new Error('a failing handler must not take the channel down');
    });
  });

  after(async () => {
    await a.close();
    await b.close();
    for (const s of raw) s.close();
  });

  it('carries a 1,000-group STATE (several datagrams) and the reply: both sides see each other', async () => {
    const report = await a.sendState([IP_B], stateA);
    assert.ok(report.datagrams > 1);
    assert.equal(report.failed, 0);
    await until('B has A with 1,000 groups', () => tableB.alive()[0]?.groups.length === 1000);
    await until('A has B from its reply', () => tableA.isAlive(IP_B));
    assert.deepEqual(tableA.alive()[0]?.groups, ['239.7.7.7']);
    assert.equal(tableB.alive()[0]?.mac, MAC_A);
    assert.deepEqual(tableB.status()[0]?.sources, ['control'], 'admitted by its authenticated STATE alone');
    assert.equal(b.counters.ok, report.datagrams);
    assert.equal(a.counters.ok, 1);
    assert.equal(eventsB[0]?.msg.sender, IP_A);
    assert.equal(eventsB[0]?.from.port, portA);
    assert.equal(a.sendCounters.sent, report.datagrams);
  });

  it('carries a LEAVE: B drops A at once', async () => {
    await a.sendLeave([IP_B], { mac: MAC_A, overlay: IP_A });
    await until('B marks A left', () => tableB.status()[0]?.state === 'left');
    assert.deepEqual(tableB.alive(), []);
  });

  it('counts garbage by result without throwing, and keeps working after it', async () => {
    const fromA = await bound(IP_A);
    const fromX = await bound(IP_X);
    raw.push(fromA, fromX);
    const start = { ...b.counters };
    const base = {
      type: 'state' as const,
      sender: IP_X,
      incarnation: '00000000000000cc',
      seq: 1,
      timestamp: Date.now(),
      mac: MAC_B,
      overlay: IP_X,
      part: 0,
      parts: 1,
      groups: ['239.9.9.9'],
      cluster: CLUSTER,
    };
    for (let i = 0; i < 50; i++) await sendRaw(fromX, Buffer.from(`garbage ${i} `.repeat(i)), IP_B, portB);
    const v2 = encodeMessage(base, KEY1);
    v2[4] = 3;
    await sendRaw(fromX, v2, IP_B, portB);
    await sendRaw(fromX, encodeMessage(base, WRONG_KEY), IP_B, portB);
    await sendRaw(fromX, encodeMessage({ ...base, cluster: '4242/other' }, KEY1), IP_B, portB);
    await sendRaw(fromX, encodeMessage({ ...base, sender: IP_A }, KEY1), IP_B, portB);
    const fresh = encodeMessage(base, KEY1);
    await sendRaw(fromX, fresh, IP_B, portB);
    await sendRaw(fromX, fresh, IP_B, portB);
    await until('all 56 datagrams counted', () => total(b.counters) - total(start) === 56);
    const delta = Object.fromEntries(Object.entries(b.counters).map(([k, v]) => [k, v - start[k as keyof ControlCounters]]));
    assert.deepEqual(delta, {
      ok: 1,
      malformed: 50,
      unsupported_version: 1,
      wrong_cluster: 1,
      bad_mac: 1,
      spoofed: 1,
      unknown_peer: 0,
      replay: 1,
      too_many_peers: 0,
    });
    assert.equal(tableB.isAlive(IP_X), true, 'the one valid datagram was applied');
    // Still serving: A comes back with a new STATE.
    await a.sendState([IP_B], stateA);
    await until('A alive again at B', () => tableB.isAlive(IP_A));
  });

  it('counts unknown_peer on a channel without a key for a sender nobody listed', async () => {
    const port = await freePort(IP_C);
    const table = new PeerTable({ selfIp: IP_C, expiryMs: 5000 });
    const c = new ControlChannel({ address: IP_C, port, cluster: CLUSTER, keys: [], table, logger: silentLogger() });
    await c.start();
    try {
      const fromX = await bound(IP_X);
      raw.push(fromX);
      const dgs = new Encoder({ sender: IP_X, cluster: CLUSTER }).state({ mac: MAC_B, overlay: IP_X, groups: [] }, Date.now());
      await sendRaw(fromX, dgs[0] as Buffer, IP_C, port);
      await until('counted', () => total(c.counters) === 1);
      assert.equal(c.counters.unknown_peer, 1);
      assert.deepEqual(table.status(), []);
      assert.equal(c.authenticated, false);
    } finally {
      await c.close();
    }
  });

  it('refuses a port already in use with a ConfigError naming --control-port', async () => {
    const clash = new ControlChannel({ address: IP_A, port: portA, cluster: CLUSTER, keys: [], table: tableA, logger: silentLogger() });
    await assert.rejects(clash.start(), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, new RegExp(`^bind control socket ${IP_A}:${portA}: .*EADDRINUSE.*choose another --control-port`));
      return true;
    });
  });

  it('counts sends after close as failed instead of throwing', async () => {
    const port = await freePort(IP_C);
    const c = new ControlChannel({ address: IP_C, port, cluster: CLUSTER, keys: [], table: new PeerTable({ selfIp: IP_C, expiryMs: 1000 }), logger: silentLogger() });
    await c.start();
    await c.close();
    assert.deepEqual(await c.sendState([IP_B, IP_A], { mac: MAC_B, overlay: IP_C, groups: [] }), { datagrams: 2, failed: 2 });
    assert.equal(c.sendCounters.failed, 2);
  });
});

describe('control channel: too many groups, key rotation', () => {
  const IP_D = '127.0.0.5';
  const IP_E = '127.0.0.6';
  let d: ControlChannel;
  let e: ControlChannel;
  let tableE: PeerTable;

  before(async () => {
    const portD = await freePort(IP_D);
    const portE = await freePort(IP_E, portD);
    tableE = new PeerTable({ selfIp: IP_E, expiryMs: 5000 });
    d = new ControlChannel({ address: IP_D, port: portD, peerPort: portE, cluster: CLUSTER, keys: [KEY1], table: new PeerTable({ selfIp: IP_D, expiryMs: 5000 }), logger: silentLogger() });
    e = new ControlChannel({ address: IP_E, port: portE, peerPort: portD, cluster: CLUSTER, keys: [KEY1], table: tableE, logger: silentLogger() });
    await d.start();
    await e.start();
  });

  after(async () => {
    await d.close();
    await e.close();
  });

  it('sends a STATE of 25,000 groups capped at the limit instead of rejecting, and says how many were left out', async () => {
    const report = await d.sendState([IP_E], { mac: MAC_A, overlay: IP_D, groups: groups(25_000) });
    assert.equal(report.failed, 0);
    assert.ok(d.unannouncedGroups > 0);
    assert.equal(d.unannouncedGroups, 25_000 - d.encoder.maxGroups);
    await until('E has D with the capped set', () => tableE.alive()[0]?.groups.length === d.encoder.maxGroups);
    await d.sendState([IP_E], { mac: MAC_A, overlay: IP_D, groups: groups(10) });
    assert.equal(d.unannouncedGroups, 0);
  });

  it('takes new keys at run time: the first signs, all verify', async () => {
    d.setKeys([KEY2]);
    const before = e.counters.bad_mac;
    await d.sendState([IP_E], { mac: MAC_A, overlay: IP_D, groups: [] });
    await until('E refuses the new signing key', () => e.counters.bad_mac === before + 1);
    e.setKeys([KEY1, KEY2]);
    const okBefore = e.counters.ok;
    await d.sendState([IP_E], { mac: MAC_A, overlay: IP_D, groups: [] });
    await until('E verifies with its second key', () => e.counters.ok === okBefore + 1);
    assert.throws(() => e.setKeys([]), /cannot drop authentication/);
  });
});

describe('control socket family', () => {
  it('an IPv6 address binds a udp6 socket (node mode on an IPv6 underlay); a bind failure names the address in brackets', async () => {
    const s = await bindControlSocket('::1', 0, silentLogger(), () => undefined, { inUse: 'in use', notAvailable: 'not here', other: 'other' });
    try {
      assert.equal(s.address().family, 'IPv6');
      assert.equal(s.address().address, '::1');
    } finally {
      s.close();
    }
    await assert.rejects(
      bindControlSocket('fd00:ffff::99', 0, silentLogger(), () => undefined, { inUse: 'in use', notAvailable: 'not here', other: 'other' }),
      (e: Error) => e instanceof ConfigError && /^bind control socket \[fd00:ffff::99\]:0: .*not here$/.test(e.message),
    );
  });
});
