import assert from 'node:assert/strict';
import { test } from 'node:test';
import { elect, observedActive } from '../../../src/gateway/election.js';

test('the lowest alive node IP forwards; the others stand by', () => {
  assert.deepEqual(elect({ self: '172.31.1.2', others: ['172.31.2.2', '172.31.10.2'], now: 10, settledAt: 0 }), { active: true, activeGateway: '172.31.1.2', reason: 'elected' });
  assert.deepEqual(elect({ self: '172.31.10.2', others: ['172.31.9.2', '172.31.2.2'], now: 10, settledAt: 0 }), { active: false, activeGateway: '172.31.2.2', reason: 'lower-ip-alive' });
  assert.deepEqual(elect({ self: '172.31.2.2', others: [], now: 10, settledAt: 0 }), { active: true, activeGateway: '172.31.2.2', reason: 'elected' });
});

test('a gateway that just started waits to hear the others before it forwards', () => {
  assert.deepEqual(elect({ self: '172.31.1.2', others: [], now: 10, settledAt: 500 }), { active: false, activeGateway: undefined, reason: 'settling' });
  assert.equal(elect({ self: '172.31.1.2', others: [], now: 500, settledAt: 500 }).active, true);
  assert.equal(observedActive(['172.31.10.2', '172.31.9.2']), '172.31.9.2');
  assert.equal(observedActive([]), undefined);
});

test('on an IPv6 underlay the lowest IPv6 node address forwards, compared as numbers, not as text', () => {
  // As text fd00:172:31:10::2 sorts before fd00:172:31:9::2; as an address it is higher.
  assert.deepEqual(elect({ self: 'fd00:172:31:10::2', others: ['fd00:172:31:9::2'], now: 10, settledAt: 0 }), { active: false, activeGateway: 'fd00:172:31:9::2', reason: 'lower-ip-alive' });
  assert.deepEqual(elect({ self: 'fd00:172:31:9::2', others: ['fd00:172:31:10::2', 'fd00:172:31:a::2'], now: 10, settledAt: 0 }), {
    active: true,
    activeGateway: 'fd00:172:31:9::2',
    reason: 'elected',
  });
  assert.equal(observedActive(['fd00:172:31:a::2', 'fd00:172:31:10::2', 'fd00:172:31:9::2']), 'fd00:172:31:9::2');
});
