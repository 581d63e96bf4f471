import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { MAX_GATEWAY_GROUPS, entryFor, groupsToJoin, parseGatewayGroups } from '../../../src/gateway/groups.js';

function refused(values: string[], pattern: RegExp): void {
  assert.throws(
    () => parseGatewayGroups(values),
    (err: unknown) => err instanceof ConfigError && err.exitCode === 2 && err.message.startsWith('--gateway-group') && pattern.test(err.message),
    `expected ${JSON.stringify(values)} to be refused with ${String(pattern)}`,
  );
}

test('entries: single groups, inbound ranges, comma lists, in the order given', () => {
  const g = parseGatewayGroups(['239.10.0.0/16=in,224.0.0.251=both', ' 239.255.255.250=out ']);
  assert.deepEqual(g, [
    { prefix: '239.10.0.0/16', base: '239.10.0.0', len: 16, direction: 'in' },
    { prefix: '224.0.0.251/32', base: '224.0.0.251', len: 32, direction: 'both' },
    { prefix: '239.255.255.250/32', base: '239.255.255.250', len: 32, direction: 'out' },
  ]);
  assert.deepEqual(parseGatewayGroups([]), []);
});

test('bad entries are refused with a message that says what is wrong', () => {
  refused(['239.1.1.1'], /not GROUP\[\/LEN\]=in\|out\|both/);
  refused(['239.1.1.1=sideways'], /direction must be in, out or both/);
  refused(['239.1.1.1='], /direction must be in, out or both/);
  refused(['239.1.1=in'], /not an IPv4 or IPv6 address/);
  refused(['10.0.0.1=in'], /not a multicast group/);
  refused(['239.1.1.1/33=in'], /prefix length must be 4 to 32/);
  refused(['239.1.1.1/24=in'], /host bits are set; did you mean 239\.1\.1\.0\/24/);
  refused(['224.0.0.0/4=in'], /may not cover 224\.0\.0\.0\/24/);
  refused(['224.0.0.0/24=in'], /may not cover 224\.0\.0\.0\/24/);
  refused(['224.0.0.22=both'], /IGMP's own group/);
  refused(['224.0.0.1=in'], /IGMP's own group/);
  refused(['239.1.0.0/16=out'], /out needs single groups/);
  refused(['239.1.0.0/16=both'], /both needs single groups/);
  refused(['239.1.0.0/16=in', '239.1.2.3=out'], /overlaps 239\.1\.0\.0\/16=in/);
  refused(['239.1.2.3=in', '239.1.2.3=out'], /overlaps/);
  refused(
    Array.from({ length: MAX_GATEWAY_GROUPS + 1 }, (_, i) => `239.2.${i >> 8}.${i & 255}=in`),
    /at most 256/,
  );
});

test('entryFor: a group belongs to the entry of its direction only', () => {
  const g = parseGatewayGroups(['239.10.0.0/16=in', '224.0.0.251=both', '239.9.9.9=out']);
  assert.equal(entryFor(g, '239.10.200.1', 'in')?.prefix, '239.10.0.0/16');
  assert.equal(entryFor(g, '239.10.200.1', 'out'), undefined);
  assert.equal(entryFor(g, '239.11.0.1', 'in'), undefined);
  assert.equal(entryFor(g, '224.0.0.251', 'out')?.direction, 'both');
  assert.equal(entryFor(g, '239.9.9.9', 'in'), undefined);
  assert.equal(entryFor(g, 'nonsense', 'in'), undefined);
});

test('groupsToJoin: inbound groups members asked for, and configured link-local ones always', () => {
  const g = parseGatewayGroups(['239.10.0.0/16=in', '224.0.0.251=both', '239.9.9.9=out', '239.8.8.8=in']);
  assert.deepEqual(groupsToJoin(g, []), ['224.0.0.251']);
  assert.deepEqual(groupsToJoin(g, ['239.10.0.2', '239.10.0.10', '239.9.9.9', '239.7.7.7', '239.10.0.2', '224.0.0.252']), ['224.0.0.251', '239.10.0.2', '239.10.0.10']);
  assert.deepEqual(groupsToJoin(g, ['239.8.8.8']), ['224.0.0.251', '239.8.8.8']);
});

test('IPv6 entries: canonical spellings, routable ranges of one scope, link-local groups one by one and inbound', () => {
  assert.deepEqual(parseGatewayGroups(['FF05:0:0::1:3=both', 'ff05::3:0/112=in', 'ff02::fb=in', 'ff0e::/16=in']), [
    { prefix: 'ff05::1:3/128', base: 'ff05::1:3', len: 128, direction: 'both' },
    { prefix: 'ff05::3:0/112', base: 'ff05::3:0', len: 112, direction: 'in' },
    { prefix: 'ff02::fb/128', base: 'ff02::fb', len: 128, direction: 'in' },
    { prefix: 'ff0e::/16', base: 'ff0e::', len: 16, direction: 'in' },
  ]);
  // Both families in one list; they never overlap each other.
  assert.equal(parseGatewayGroups(['239.1.1.1=out', 'ff05::1:1=out']).length, 2);
});

test('bad IPv6 entries are refused: scopes, ND and MLD groups, link-local out, ranges, overlaps', () => {
  refused(['ff01::1=in'], /interface-local/);
  refused(['ff00::1=in'], /reserved scope 0/);
  refused(['ff0f::1=in'], /reserved scope f/);
  refused(['ff02::1=in'], /Neighbor Discovery or MLD/);
  refused(['ff02::2=in'], /Neighbor Discovery or MLD/);
  refused(['ff02::16=in'], /Neighbor Discovery or MLD/);
  refused(['ff02::1:ff00:5=in'], /Neighbor Discovery or MLD/);
  refused(['ff02::fb=both'], /link-local IPv6 groups cross inbound only \(ff02::fb=in\)/);
  refused(['ff02::fb=out'], /inbound only/);
  refused(['ff02::/16=in'], /may not be link-local/);
  refused(['ff00::/8=in'], /IPv6 prefix length must be 16 to 128/);
  refused(['ff05::1:3/129=in'], /16 to 128/);
  refused(['ff05::1:3/112=in'], /host bits are set; did you mean ff05::1:0\/112/);
  refused(['fd00::1=in'], /not an IPv6 multicast group/);
  refused(['ff05::/16=out'], /out needs single groups/);
  refused(['ff05::/16=in', 'ff05::1:3=out'], /overlaps ff05::\/16=in/);
  refused(['ff05::1:3=in', 'FF05::1:3=out'], /overlaps/);
});

test('IPv6: entryFor and groupsToJoin follow the family and the direction', () => {
  const g = parseGatewayGroups(['ff05::1:0/112=in', 'ff02::fb=in', 'ff05::2:2=out', '239.1.0.0/16=in']);
  assert.equal(entryFor(g, 'ff05::1:ab', 'in')?.prefix, 'ff05::1:0/112');
  assert.equal(entryFor(g, 'ff05::2:ab', 'in'), undefined);
  assert.equal(entryFor(g, 'ff05::2:2', 'out')?.direction, 'out');
  assert.equal(entryFor(g, 'ff05::2:2', 'in'), undefined);
  assert.equal(entryFor(g, '239.1.2.3', 'in')?.prefix, '239.1.0.0/16');
  assert.deepEqual(groupsToJoin(g, []), ['ff02::fb']);
  assert.deepEqual(groupsToJoin(g, ['ff05::1:9', 'ff05::2:2', '239.1.0.7', 'ff05::1:3', 'ff02::c']), ['239.1.0.7', 'ff02::fb', 'ff05::1:3', 'ff05::1:9']);
});
