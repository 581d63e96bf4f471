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
  refused(['239.1.1=in'], /not an IPv4 address/);
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
