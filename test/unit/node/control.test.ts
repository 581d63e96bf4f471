import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../../src/log.js';
import { Encoder } from '../../../src/membership/codec.js';
import { PeerTable } from '../../../src/membership/peers.js';
import { NODE_LOCAL_STATE, NodeControl } from '../../../src/node/control.js';

const key = Buffer.alloc(32, 7);

function channel(): { ctl: NodeControl; a: PeerTable; b: PeerTable } {
  const a = new PeerTable({ selfIp: '172.31.1.2', expiryMs: 5000 });
  const b = new PeerTable({ selfIp: '172.31.1.2', expiryMs: 5000 });
  const ctl = new NodeControl({
    address: '172.31.1.2',
    port: 7473,
    keys: [key],
    domains: [
      { label: 'node:100/a', table: a },
      { label: 'node:200/b', table: b },
    ],
    logger: silentLogger(),
    now: () => Date.now(),
  });
  return { ctl, a, b };
}

test('one socket, one table per domain: a STATE goes to the domain its label names', () => {
  const { ctl, a, b } = channel();
  const seen: string[] = [];
  ctl.onMessage((e) => seen.push(e.label));
  const enc = new Encoder({ sender: '172.31.2.2', cluster: 'node:200/b', key });
  const [dg] = enc.state({ ...NODE_LOCAL_STATE, groups: ['239.1.1.1'] }, Date.now());
  assert.equal(ctl.handle(dg!, { address: '172.31.2.2' }), 'ok');
  assert.deepEqual(seen, ['node:200/b']);
  assert.deepEqual(
    b.alive().map((p) => [p.ip, p.groups.join()]),
    [['172.31.2.2', '239.1.1.1']],
  );
  assert.equal(a.alive().length, 0, 'the other domain never hears it');
});

test('a label no domain has is wrong_cluster; a sidecar label is not a node label', () => {
  const { ctl } = channel();
  const sidecar = new Encoder({ sender: '172.31.2.2', cluster: '100/a', key });
  assert.equal(ctl.handle(sidecar.state({ ...NODE_LOCAL_STATE, groups: [] }, Date.now())[0]!, { address: '172.31.2.2' }), 'wrong_cluster');
  assert.equal(ctl.counters.wrong_cluster, 1);
});

test('a bad MAC, garbage and a spoofed source are counted, never thrown', () => {
  const { ctl } = channel();
  const bad = new Encoder({ sender: '172.31.2.2', cluster: 'node:100/a', key: Buffer.alloc(32, 9) });
  assert.equal(ctl.handle(bad.state({ ...NODE_LOCAL_STATE, groups: [] }, Date.now())[0]!, { address: '172.31.2.2' }), 'bad_mac');
  assert.equal(ctl.handle(Buffer.from('hello'), { address: '172.31.2.2' }), 'malformed');
  const good = new Encoder({ sender: '172.31.2.2', cluster: 'node:100/a', key });
  assert.equal(ctl.handle(good.state({ ...NODE_LOCAL_STATE, groups: [] }, Date.now())[0]!, { address: '172.31.9.9' }), 'spoofed');
  assert.equal(ctl.counters.bad_mac + ctl.counters.malformed + ctl.counters.spoofed, 3);
});

/** `n` distinct groups in 239.0.0.0/8. */
const manyGroups = (n: number): string[] => Array.from({ length: n }, (_, i) => `239.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);

test('a STATE with more groups than the protocol carries is cut, never thrown, and reported per domain', async () => {
  const { ctl } = channel();
  const enc = new Encoder({ sender: '172.31.1.2', cluster: 'node:100/a', key });
  assert.throws(() => enc.state({ ...NODE_LOCAL_STATE, groups: manyGroups(30_000) }, 0), /encode STATE/, 'baseline: the uncapped encoder refuses the set');
  await ctl.sendState('node:100/a', ['172.31.2.2'], manyGroups(30_000));
  assert.equal(ctl.unannouncedGroups('node:100/a'), 30_000 - enc.maxGroups);
  assert.equal(ctl.unannouncedGroups('node:200/b'), 0, 'the other domain is not affected');
  await ctl.sendState('node:100/a', ['172.31.2.2'], manyGroups(3));
  assert.equal(ctl.unannouncedGroups('node:100/a'), 0, 'a smaller set is whole again');
});

test('new keys at run time, as the sidecar takes them: the first signs (every domain), all verify', () => {
  const { ctl } = channel();
  const key2 = Buffer.alloc(32, 8);
  const from = (k: Buffer, label = 'node:100/a'): Buffer => new Encoder({ sender: '172.31.2.2', cluster: label, key: k }).state({ ...NODE_LOCAL_STATE, groups: [] }, Date.now())[0]!;
  assert.equal(ctl.handle(from(key2), { address: '172.31.2.2' }), 'bad_mac', 'baseline: the new key is not known yet');
  ctl.setKeys([key2, key]);
  assert.equal(ctl.handle(from(key2), { address: '172.31.2.2' }), 'ok', 'the new key verifies');
  assert.equal(ctl.handle(from(key, 'node:200/b'), { address: '172.31.2.2' }), 'ok', 'the old one too, until it is removed');
  ctl.setKeys([key2]);
  assert.equal(ctl.handle(from(key), { address: '172.31.2.2' }), 'bad_mac', 'a removed key no longer verifies');
  assert.throws(() => ctl.setKeys([]), /cannot drop authentication/);
  const keyless = new NodeControl({ address: '172.31.1.2', port: 7473, keys: [], domains: [], logger: silentLogger() });
  assert.throws(() => keyless.setKeys([key]), /cannot start authenticating/);
});
