import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  broadcastOf,
  cidrContains,
  compareIpv4,
  formatIpv4,
  isIpv4,
  isLinkLocalMulticast,
  isMulticast,
  isRoutableMulticast,
  isUnicast,
  parseCidr,
  parseIpv4,
  sortIpv4,
} from '../../../src/net/ipv4.js';

test('parseIpv4 reads dotted quads strictly and formatIpv4 writes them back', () => {
  assert.equal(parseIpv4('10.1.2.3'), 0x0a010203);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  assert.equal(formatIpv4(0xeffffffa), '239.255.255.250');
  for (const bad of ['', '10.1.2', '10.1.2.3.4', '10.1.2.256', '010.1.2.3', '1e1.1.1.1', ' 10.1.2.3', '10.1.2.-1', '0x0a.1.2.3']) {
    assert.equal(parseIpv4(bad), undefined, bad);
    assert.equal(isIpv4(bad), false, bad);
  }
});

test('predicates take numbers and strings alike; a non-address answers false', () => {
  assert.equal(isMulticast('239.1.1.1'), true);
  assert.equal(isMulticast(0xe0000001), true);
  assert.equal(isMulticast('240.0.0.1'), false);
  assert.equal(isMulticast('not an ip'), false);
  assert.equal(isLinkLocalMulticast('224.0.0.251'), true);
  assert.equal(isLinkLocalMulticast('224.0.1.1'), false);
  assert.equal(isRoutableMulticast('224.0.1.1'), true);
  assert.equal(isRoutableMulticast('224.0.0.251'), false);
  assert.equal(isRoutableMulticast('10.0.0.1'), false);
  assert.equal(isUnicast('10.0.0.1'), true);
  assert.equal(isUnicast('0.1.2.3'), false);
  assert.equal(isUnicast('239.1.1.1'), false);
  assert.equal(isUnicast('255.255.255.255'), false);
  assert.equal(isUnicast('x'), false);
});

test('sortIpv4 orders numerically, compareIpv4 puts non-addresses first', () => {
  assert.deepEqual(sortIpv4(['10.0.0.10', '10.0.0.9', '9.255.255.255']), ['9.255.255.255', '10.0.0.9', '10.0.0.10']);
  assert.ok(compareIpv4('junk', '0.0.0.0') < 0);
  assert.equal(compareIpv4('10.0.0.1', '10.0.0.1'), 0);
});

test('CIDRs: network, broadcast and membership', () => {
  const c = parseCidr('10.8.3.77/22');
  assert.deepEqual(c, { network: 0x0a080000, prefix: 22 });
  assert.equal(broadcastOf(c!), '10.8.3.255');
  assert.equal(cidrContains(c!, '10.8.1.1'), true);
  assert.equal(cidrContains(c!, '10.8.4.1'), false);
  assert.equal(broadcastOf(parseCidr('0.0.0.0/0')!), '255.255.255.255');
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/08', 'x/8']) assert.equal(parseCidr(bad), undefined, bad);
});
