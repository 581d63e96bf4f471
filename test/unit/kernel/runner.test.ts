import assert from 'node:assert/strict';
import { test } from 'node:test';
import { helperArgv, netnsArgv, netnsExecArgv, netnsSpawn } from '../../../src/kernel/runner.js';

test('netnsArgv: ip and bridge get -n, anything else runs under ip netns exec', () => {
  assert.deepEqual(netnsArgv(['ip', '-j', 'link'], undefined), ['ip', '-j', 'link']);
  assert.deepEqual(netnsArgv(['ip', 'monitor', 'maddress'], 'kmcp1'), ['ip', '-n', 'kmcp1', 'monitor', 'maddress']);
  assert.deepEqual(netnsArgv(['nft', 'list', 'tables'], 'kmcp1'), ['ip', 'netns', 'exec', 'kmcp1', 'nft', 'list', 'tables']);
});

test('helperArgv: long-running helpers get a parent death signal, in the node or a pod namespace', () => {
  assert.deepEqual(helperArgv(['ip', 'monitor', 'link', 'route'], undefined), ['setpriv', '--pdeathsig', 'SIGKILL', '--', 'ip', 'monitor', 'link', 'route']);
  assert.deepEqual(helperArgv(['ip', '-o', 'monitor', 'maddress'], 'kmcp1'), ['setpriv', '--pdeathsig', 'SIGKILL', '--', 'ip', '-n', 'kmcp1', '-o', 'monitor', 'maddress']);
});

test('netnsArgv with nsenter: setns only (no mount namespace, no /sys remount); names, never paths', () => {
  assert.deepEqual(netnsArgv(['ip', '-j', 'maddr', 'show'], 'cni-1234', 'nsenter'), ['nsenter', '--net=/var/run/netns/cni-1234', '--', 'ip', '-j', 'maddr', 'show']);
  assert.deepEqual(netnsArgv(['ip', '-j', 'link'], undefined, 'nsenter'), ['ip', '-j', 'link'], "the agent's own namespace: nothing to enter");
  assert.deepEqual(helperArgv(['ip', 'monitor', 'maddress'], 'kmcp1', 'nsenter'), [
    'setpriv',
    '--pdeathsig',
    'SIGKILL',
    '--',
    'nsenter',
    '--net=/var/run/netns/kmcp1',
    '--',
    'ip',
    'monitor',
    'maddress',
  ]);
  for (const bad of ['../../proc/1/ns/net', 'a/b', '..', '.']) assert.throws(() => netnsArgv(['ip', 'link'], bad, 'nsenter'), /not a network namespace name/);
});

test('netnsExecArgv: always execs the command itself (ip netns exec or nsenter), even ip', () => {
  assert.deepEqual(netnsExecArgv(['ip', 'maddr'], 'kmcp1'), ['ip', 'netns', 'exec', 'kmcp1', 'ip', 'maddr']);
  assert.deepEqual(netnsExecArgv(['python3', '-c', 'x'], 'kmcp1'), ['ip', 'netns', 'exec', 'kmcp1', 'python3', '-c', 'x']);
  assert.deepEqual(netnsExecArgv(['containerd'], 'kmcn1', 'nsenter'), ['nsenter', '--net=/var/run/netns/kmcn1', '--', 'containerd']);
  assert.deepEqual(netnsExecArgv(['node'], undefined), ['node']);
  assert.throws(() => netnsExecArgv(['x'], '../1', 'nsenter'), /not a network namespace name/);
});

test('netnsSpawn: the child is the command run through the namespace entry', async () => {
  const child = netnsSpawn([process.execPath, '-e', 'process.stdout.write(process.argv.length ? "ok" : "")'], undefined, { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0);
  assert.equal(out, 'ok');
  assert.deepEqual(child.spawnargs.slice(0, 2), [process.execPath, '-e']);
});
