import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { envName, FlagTable, parseHostPort } from '../../../src/runtime/flags.js';

const T = new FlagTable({ heartbeatInterval: '--heartbeat-interval', service: '--service', capture: '--capture' }, { heartbeatInterval: '1000' }, new Set(['service']));

test('one kit for every agent: env names, merge order, repeatable flags', () => {
  assert.equal(envName('--heartbeat-interval'), 'KMCAST_HEARTBEAT_INTERVAL');
  assert.deepEqual(T.merge({}, {}), { heartbeatInterval: '1000' });
  assert.deepEqual(T.merge({}, { KMCAST_HEARTBEAT_INTERVAL: '500', KMCAST_SERVICE: 'a,b' }), { heartbeatInterval: '500', service: ['a', 'b'] });
  assert.deepEqual(
    T.merge({ heartbeatInterval: '200', service: [] }, { KMCAST_HEARTBEAT_INTERVAL: '500', KMCAST_SERVICE: 'a' }),
    { heartbeatInterval: '200', service: ['a'] },
    'a flag wins; an empty repeatable flag does not',
  );
});

test('readers fail naming the flag and its variable (exit 2); booleans read the same in every mode', () => {
  assert.equal(T.int({ heartbeatInterval: ' 250 ' }, 'heartbeatInterval', 50, 60_000), 250);
  assert.throws(
    () => T.int({ heartbeatInterval: '10' }, 'heartbeatInterval', 50, 60_000),
    (e: unknown) => e instanceof ConfigError && e.exitCode === 2 && /^--heartbeat-interval \(or KMCAST_HEARTBEAT_INTERVAL\): invalid value "10"/.test(e.message),
  );
  for (const [v, want] of [
    ['on', true],
    ['YES', true],
    [' true ', true],
    ['1', true],
    ['off', false],
    ['no', false],
    ['0', false],
    ['', false],
  ] as const)
    assert.equal(T.bool({ capture: v }, 'capture'), want, v);
  assert.throws(() => T.bool({ capture: 'maybe' }, 'capture'), /--capture \(or KMCAST_CAPTURE\): invalid value "maybe"/);
  assert.deepEqual(parseHostPort(':9471', 80), { host: '', port: 9471 });
  assert.equal(parseHostPort('x:70000', 80), undefined);
});
