import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseJoins, parseGatewayGroups } from '../../../src/gateway/groups.js';

const groups = parseGatewayGroups(['239.10.0.0/16=in', '239.20.0.1=in', '224.0.0.251=both', '239.2.2.2=out']);
const range = (n: number, from = 1): string[] => Array.from({ length: n }, (_, i) => `239.10.0.${from + i}`);
const one = (gs: readonly string[], n = 1): Map<string, number> => new Map(gs.map((g) => [g, n]));

test('under the limit every wanted group is joined, sorted; link-local configured ones always, other directions never', () => {
  const c = chooseJoins(groups, one(['239.10.0.9', '239.20.0.1', '239.2.2.2', '239.99.0.1']), new Set(), 10);
  assert.deepEqual(c, { join: ['224.0.0.251', '239.10.0.9', '239.20.0.1'], unjoined: [] });
});

test('one member joining the lowest groups of a range cannot push out a group joined before (the old sort and slice did)', () => {
  const victim = '239.10.0.200';
  const before = chooseJoins(groups, one([victim]), new Set(), 4);
  assert.ok(before.join.includes(victim));
  const flood = one([...range(10), victim]);
  const after = chooseJoins(groups, flood, new Set(before.join), 4);
  assert.ok(after.join.includes(victim), `the joined ${victim} was left for lower addresses: ${after.join.join(',')}`);
  assert.equal(after.join.length, 4);
  assert.equal(after.unjoined.length, 11 + 1 - 4, 'every wanted group is either joined or counted as not joined');
  // Predictable: the same inputs give the same choice, and it is stable once made.
  assert.deepEqual(chooseJoins(groups, flood, new Set(after.join), 4), after);
});

test('configured single groups first, then the groups most members and nodes joined, then the joined ones', () => {
  const demand = new Map([...one(range(6)), ['239.10.0.50', 3], ['239.20.0.1', 1]]);
  const c = chooseJoins(groups, demand, new Set(range(6)), 3);
  assert.deepEqual(c.join, ['224.0.0.251', '239.10.0.50', '239.20.0.1'], 'singles (224.0.0.251, 239.20.0.1), then the group 3 joined');
  const d = chooseJoins(groups, demand, new Set(range(6)), 5);
  assert.deepEqual(d.join, ['224.0.0.251', '239.10.0.1', '239.10.0.2', '239.10.0.50', '239.20.0.1']);
  assert.deepEqual(d.unjoined, ['239.10.0.3', '239.10.0.4', '239.10.0.5', '239.10.0.6']);
  // Ties among groups not joined yet go to the lowest address.
  assert.deepEqual(chooseJoins(groups, one(range(5)), new Set(), 3).join, ['224.0.0.251', '239.10.0.1', '239.10.0.2']);
});
