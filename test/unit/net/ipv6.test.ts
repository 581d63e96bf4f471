import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalIpv6,
  compareIpv6,
  formatIpv6,
  isIpv6LinkLocalMulticast,
  isIpv6Multicast,
  isIpv6RoutableMulticast,
  isIpv6Unicast,
  isSolicitedNode,
  multicastScope,
  parseIpv6,
} from '../../../src/net/ipv6.js';
import { canonicalGroup, compareGroups, familyOf, isLinkLocalGroup, isRoutableGroup, sortGroups } from '../../../src/net/groups.js';

describe('ipv6: text', () => {
  it('gives one RFC 5952 spelling to every way of writing an address', () => {
    for (const [text, want] of [
      ['FF05:0:0:0:0:0:1:3', 'ff05::1:3'],
      ['ff02:0000::00fb', 'ff02::fb'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['fd00::', 'fd00::'],
    ] as const) {
      assert.equal(canonicalIpv6(text), want, text);
    }
  });

  it('refuses what is no plain IPv6 address: zones, IPv4, garbage', () => {
    for (const text of ['fe80::1%eth0', '10.0.0.1', 'ff05::1::3', 'gg::1', '', ':::', 'ff05::1:3/64']) assert.equal(parseIpv6(text), undefined, text);
  });

  it('formats 16 bytes and refuses other lengths', () => {
    assert.equal(formatIpv6(parseIpv6('ff05::1:3')!), 'ff05::1:3');
    assert.throws(() => formatIpv6(Buffer.alloc(4)), /16 bytes/);
  });
});

describe('ipv6: multicast rules', () => {
  it('reads the scope nibble', () => {
    assert.equal(multicastScope('ff02::fb'), 2);
    assert.equal(multicastScope('ff05::1:3'), 5);
    assert.equal(multicastScope('ff3e::8000:1'), 0xe);
    assert.equal(multicastScope('fd00::1'), undefined);
  });

  it('announces realm scope and wider, floods link-local, never carries interface-local or reserved scopes', () => {
    for (const g of ['ff03::1', 'ff04::1', 'ff05::1:3', 'ff08::1', 'ff0e::1', 'ff15::1', 'ff3e::8000:1']) assert.ok(isIpv6RoutableMulticast(g), g);
    for (const g of ['ff02::fb', 'ff02::c', 'ff02::1', 'ff12::1', 'ff01::1', 'ff00::1', 'ff0f::1', 'fd00::1']) assert.ok(!isIpv6RoutableMulticast(g), g);
    assert.ok(isIpv6LinkLocalMulticast('ff02::fb') && isIpv6LinkLocalMulticast('ff12::8000:1'));
    assert.ok(!isIpv6LinkLocalMulticast('ff05::1:3') && !isIpv6LinkLocalMulticast('ff01::1'));
    assert.ok(isIpv6Multicast('ff01::1') && !isIpv6Multicast('fe80::1'));
  });

  it('knows the solicited-node range Neighbor Discovery uses', () => {
    assert.ok(isSolicitedNode('ff02::1:ff00:1') && isSolicitedNode('ff02::1:ffab:cdef'));
    for (const g of ['ff02::1', 'ff02::1:fe00:1', 'ff05::1:ff00:1', 'ff02::2:ff00:1']) assert.ok(!isSolicitedNode(g), g);
  });

  it('takes only addresses a pod or node can be reached at as unicast', () => {
    for (const a of ['fd00:10::5', '2001:db8::1', 'fc00::1']) assert.ok(isIpv6Unicast(a), a);
    for (const a of ['::', '::1', 'fe80::1', 'febf::1', 'ff05::1', '::ffff:10.0.0.1', 'junk']) assert.ok(!isIpv6Unicast(a), a);
  });

  it('orders by bytes', () => {
    assert.deepEqual(['ff05::10', 'ff05::2', 'ff02::fb'].sort(compareIpv6), ['ff02::fb', 'ff05::2', 'ff05::10']);
  });
});

describe('groups of either family', () => {
  it('tells the family and the canonical text, and refuses unicast', () => {
    assert.equal(familyOf('239.1.1.1'), 4);
    assert.equal(familyOf('FF05::1:3'), 6);
    assert.equal(familyOf('nope'), undefined);
    assert.equal(canonicalGroup('FF05:0::1:3'), 'ff05::1:3');
    assert.equal(canonicalGroup('239.1.1.1'), '239.1.1.1');
    assert.equal(canonicalGroup('10.0.0.1'), undefined);
    assert.equal(canonicalGroup('fd00::1'), undefined);
  });

  it('classifies link-local and routable groups of both families alike', () => {
    assert.ok(isRoutableGroup('239.1.1.1') && isRoutableGroup('ff05::1:3'));
    assert.ok(!isRoutableGroup('224.0.0.251') && !isRoutableGroup('ff02::fb'));
    assert.ok(isLinkLocalGroup('224.0.0.251') && isLinkLocalGroup('ff02::fb'));
    assert.ok(!isLinkLocalGroup('239.1.1.1') && !isLinkLocalGroup('ff05::1:3'));
  });

  it('sorts IPv4 before IPv6, each numerically, without duplicates', () => {
    assert.deepEqual(sortGroups(['ff05::2', '239.1.1.10', 'ff05::1', '239.1.1.9', 'ff05::1']), ['239.1.1.9', '239.1.1.10', 'ff05::1', 'ff05::2']);
    assert.ok(compareGroups('239.255.255.255', 'ff05::1') < 0);
  });
});
