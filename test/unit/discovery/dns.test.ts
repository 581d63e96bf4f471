import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unicastOnly } from '../../../src/discovery/dns.js';
import { peerAddressError } from '../../../src/net/ipv4.js';
import { validateNodeConfig } from '../../../src/node/config.js';
import { validateConfig } from '../../../src/sidecar/config.js';

test('DNS answers: only unicast records are peers, in both modes; the rest is reported', () => {
  let reported: string[] = [];
  const ips = unicastOnly(['10.244.1.5', '0.0.0.0', '239.1.1.1', '255.255.255.255', '240.0.0.1', '10.244.2.5'], (x) => (reported = x));
  assert.deepEqual(ips, ['10.244.1.5', '10.244.2.5']);
  assert.deepEqual(reported, ['0.0.0.0', '239.1.1.1', '240.0.0.1', '255.255.255.255']);
  assert.deepEqual(
    unicastOnly(['10.0.0.1'], (x) => (reported = x)),
    ['10.0.0.1'],
  );
  assert.deepEqual(reported, []);
});

test('--peers: one rule for the sidecar and the node agent (IPv4 unicast)', () => {
  assert.equal(peerAddressError('172.31.1.2', 'x'), undefined);
  for (const bad of ['239.1.1.1', '0.0.0.0', '255.255.255.255', '240.0.0.1']) {
    assert.match(peerAddressError(bad, 'x') ?? '', /is not a unicast IPv4 address/);
    assert.throws(() => validateNodeConfig({ service: 'app', peers: `172.31.1.2,${bad}` }), /--peers .*is not a unicast IPv4 address.*other nodes' IPs/);
    assert.throws(() => validateConfig({ service: 'app', peers: `10.0.0.1,${bad}` }), /--peers .*is not a unicast IPv4 address.*peer pods' IPs/);
  }
  assert.match(peerAddressError('nope', 'x') ?? '', /is not an IPv4 address/);
});
