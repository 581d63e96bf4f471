import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../../src/errors.js';
import { classifyGroup, classifyGroup6, formatIPv4, groupMac, groupMac6, parseGroupSpec, parseIPv4 } from '../../../src/manifests/groups.js';

test('parseIPv4 and formatIPv4 round-trip; non-addresses are undefined', () => {
  for (const a of ['0.0.0.0', '10.1.2.3', '224.0.0.251', '239.255.255.255', '255.255.255.255']) assert.equal(formatIPv4(parseIPv4(a)!), a);
  for (const a of ['256.1.1.1', '1.2.3', '1.2.3.4.5', 'a.b.c.d', '']) assert.equal(parseIPv4(a), undefined, a);
});

test('classifyGroup follows the IANA blocks of RFC 5771', () => {
  const cases: [string, string][] = [
    ['10.0.0.1', 'not-multicast'],
    ['223.255.255.255', 'not-multicast'],
    ['240.0.0.1', 'not-multicast'],
    ['224.0.0.251', 'link-local'],
    ['224.0.0.0', 'link-local'],
    ['224.0.1.1', 'global'],
    ['232.1.2.3', 'ssm'],
    ['233.1.1.1', 'glop'],
    ['239.0.0.1', 'admin-scoped'],
    ['239.255.255.250', 'admin-scoped'],
    ['238.1.1.1', 'global'],
  ];
  for (const [a, c] of cases) assert.equal(classifyGroup(parseIPv4(a)!), c, a);
});

test('groupMac keeps the low 23 bits: 32 groups alias to one MAC', () => {
  assert.equal(groupMac(parseIPv4('239.1.1.1')!), '01:00:5e:01:01:01');
  assert.equal(groupMac(parseIPv4('224.129.1.1')!), '01:00:5e:01:01:01');
  assert.equal(groupMac(parseIPv4('239.255.255.250')!), '01:00:5e:7f:ff:fa');
  assert.notEqual(groupMac(parseIPv4('239.1.1.1')!), groupMac(parseIPv4('239.1.1.2')!));
});

test('parseGroupSpec accepts G:PORT and explains every mistake', () => {
  assert.deepEqual(parseGroupSpec('239.1.2.3:5000'), { address: '239.1.2.3', port: 5000 });
  const bad: [string, RegExp][] = [
    ['239.1.2.3', /expected ADDRESS:PORT/],
    ['239.1.2.300:5000', /is not an IPv4 address/],
    ['10.1.2.3:5000', /not a multicast address .*239/],
    ['239.1.2.3:0', /port must be between 1 and 65535/],
    ['239.1.2.3:70000', /port must be between 1 and 65535/],
  ];
  for (const [t, re] of bad)
    assert.throws(
      () => parseGroupSpec(t),
      (e: unknown) => e instanceof InputError && re.test(e.message),
      t,
    );
});

test('classifyGroup6: scopes, Neighbor Discovery and MLD groups, SSM; groupMac6 maps the low 32 bits', () => {
  const cases: [string, string][] = [
    ['fd00::1', 'not-multicast'],
    ['ff00::1', 'reserved-scope'],
    ['ff0f::1', 'reserved-scope'],
    ['ff01::1', 'interface-local'],
    ['ff02::1', 'nd-mld'],
    ['ff02::2', 'nd-mld'],
    ['ff02::16', 'nd-mld'],
    ['ff02::1:ffab:cdef', 'nd-mld'],
    ['ff3e::8000:1', 'ssm'],
    ['ff35::1', 'ssm'],
    ['ff02::fb', 'link-local'],
    ['ff02::c', 'link-local'],
    ['ff0e::1', 'global'],
    ['ff05::1:3', 'scoped'],
    ['ff15::1', 'scoped'],
  ];
  for (const [g, want] of cases) assert.equal(classifyGroup6(g), want, g);
  assert.equal(groupMac6('ff05::1:3'), '33:33:00:01:00:03');
  assert.equal(groupMac6('ff02::fb'), '33:33:00:00:00:fb');
});
