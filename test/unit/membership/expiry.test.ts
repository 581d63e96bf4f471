import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeOptions, validateConfig } from '../../../src/sidecar/config.js';
import { ExpiryClock, expireTickMs, listedPeerExpiry, peerTableTiming } from '../../../src/membership/expiry.js';
import { PeerTable } from '../../../src/membership/peers.js';
import { mergeNodeOptions, validateNodeConfig } from '../../../src/node/config.js';
import { KEY1, CLUSTER, MAC_A, encoder, ok } from './helpers.js';
import { decode } from '../../../src/membership/codec.js';

const A = '10.0.0.1';

test('--listed-peer-expiry: 3 x --peer-expiry by default, never below it', () => {
  assert.deepEqual(listedPeerExpiry(5, undefined), { value: 15 });
  assert.deepEqual(listedPeerExpiry(4, 7), { value: 7 });
  assert.match((listedPeerExpiry(8, 7) as { error: string }).error, /at least --peer-expiry \(8\)/);
});

test('the flags become the same PeerTable timing in both modes', () => {
  const sidecar = validateConfig(mergeOptions({ peers: '10.0.0.2', heartbeatInterval: '500', peerExpiry: '4' }, {}));
  const node = validateNodeConfig(mergeNodeOptions({ peers: '172.31.1.2', service: ['app=100'], heartbeatInterval: '500', peerExpiry: '4' }, {}));
  assert.deepEqual(peerTableTiming(node), peerTableTiming(sidecar));
  assert.deepEqual(peerTableTiming(node), { expiryMs: 2000, listedExpiryMs: 6000, tickMs: 125 });
  assert.equal(expireTickMs(100), 50, 'never faster than 50 ms');
  const n2 = validateNodeConfig(mergeNodeOptions({ peers: '172.31.1.2', service: ['app=100'] }, { KMCAST_LISTED_PEER_EXPIRY: '9' }));
  assert.equal(n2.listedPeerExpiry, 9);
});

test('ExpiryClock: a silent listed peer is reported suspect once, then expired after the listed expiry', () => {
  const t = new PeerTable({ selfIp: '10.0.0.9', ...peerTableTiming({ heartbeatMs: 1000, peerExpiry: 2, listedPeerExpiry: 4 }) });
  t.setListed('dns', [A]);
  const enc = encoder(A);
  for (const dg of enc.state({ mac: MAC_A, overlay: A, groups: [] }, 0)) t.receive(ok(decode(dg, { keys: [KEY1], cluster: CLUSTER })), A, 0, { authenticated: true });
  const clock = new ExpiryClock();
  const ticks: Array<{ at: number; expired: string[]; suspects: string[] | undefined }> = [];
  for (let now = 250; now <= 5000; now += 250) ticks.push({ at: now, ...clock.tick(t, now) });
  const suspectAt = ticks.filter((x) => x.suspects !== undefined);
  assert.deepEqual(
    suspectAt.map((x) => [x.at, x.suspects]),
    [
      [2250, [A]],
      [4250, []],
    ],
    'suspect once past 2 s, cleared when removed',
  );
  assert.deepEqual(
    ticks.filter((x) => x.expired.length).map((x) => [x.at, x.expired]),
    [[4250, [A]]],
  );
});
