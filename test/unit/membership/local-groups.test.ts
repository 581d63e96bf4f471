import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIpv4MaddrUsers } from '../../../src/kernel/parse.js';
import { appGroupsOnOverlay } from '../../../src/membership/local-groups.js';
import { fixture } from '../fixtures.js';

test('maddr join counts: "users" when more than one socket joined, 1 otherwise', () => {
  assert.deepEqual([...parseIpv4MaddrUsers(fixture('iproute2/maddr-users.json'))], [
    ['239.5.5.7', 1],
    ['239.5.5.6', 2],
    ['224.0.0.1', 1],
  ]);
});

test("apps' groups on vx0: the agent's own joins (for eth0 groups) are subtracted, 224.0.0.1 is never one", () => {
  const users = parseIpv4MaddrUsers(fixture('iproute2/maddr-users.json'));
  // The agent joined 239.5.5.6 for an eth0 app and an app joined it on vx0 too: still an app group.
  assert.deepEqual(appGroupsOnOverlay(users, new Set(['239.5.5.6'])), ['239.5.5.6', '239.5.5.7']);
  // Only the agent holds 239.5.5.7 on vx0: after the eth0 app leaves, it is not announced.
  assert.deepEqual(appGroupsOnOverlay(users, new Set(['239.5.5.6', '239.5.5.7'])), ['239.5.5.6']);
  assert.deepEqual(appGroupsOnOverlay(new Map([['224.0.0.1', 1]]), new Set()), []);
});
