import assert from 'node:assert/strict';
import { test } from 'node:test';
import { helperArgv, netnsArgv } from '../../../src/iproute2/runner.js';

test('netnsArgv: ip and bridge get -n, anything else runs under ip netns exec', () => {
  assert.deepEqual(netnsArgv(['ip', '-j', 'link'], undefined), ['ip', '-j', 'link']);
  assert.deepEqual(netnsArgv(['ip', 'monitor', 'maddress'], 'kmcp1'), ['ip', '-n', 'kmcp1', 'monitor', 'maddress']);
  assert.deepEqual(netnsArgv(['nft', 'list', 'tables'], 'kmcp1'), ['ip', 'netns', 'exec', 'kmcp1', 'nft', 'list', 'tables']);
});

test('helperArgv: long-running helpers get a parent death signal, in the node or a pod namespace', () => {
  assert.deepEqual(helperArgv(['ip', 'monitor', 'link', 'route'], undefined), ['setpriv', '--pdeathsig', 'SIGKILL', '--', 'ip', 'monitor', 'link', 'route']);
  assert.deepEqual(helperArgv(['ip', '-o', 'monitor', 'maddress'], 'kmcp1'), ['setpriv', '--pdeathsig', 'SIGKILL', '--', 'ip', '-n', 'kmcp1', '-o', 'monitor', 'maddress']);
});
