import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BridgeClient } from '../../../src/kernel/bridge.js';
import { IpClient } from '../../../src/kernel/ip.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { fixture } from '../fixtures.js';

test('BridgeClient reads the FDB and MDB with -j in its namespace; a missing device reads as empty', async () => {
  const runner = new FakeRunner()
    .on('bridge -j fdb show dev vx0', { stdout: fixture('iproute2/fdb.json') })
    .on('bridge -j mdb show dev vx0', { stdout: fixture('iproute2/mdb.json') })
    .on('bridge -j fdb show dev gone', { code: 1, stderr: 'Cannot find device "gone"\n' });
  const bridge = new BridgeClient(runner, 'kmcp1');
  assert.ok((await bridge.fdb('vx0')).length > 0);
  assert.ok((await bridge.mdb('vx0')).length > 0);
  assert.deepEqual(await bridge.fdb('gone'), []);
  assert.ok(runner.calls.every((c) => c.netns === 'kmcp1'));
});

test('BridgeClient: any other read failure throws with stderr', async () => {
  const runner = new FakeRunner().on('bridge -j mdb show dev vx0', { code: 255, stderr: 'RTNETLINK answers: Operation not permitted\n' });
  await assert.rejects(new BridgeClient(runner).mdb('vx0'), /Operation not permitted/);
});

test('BridgeClient.batch: one `bridge -batch -` with the lines on stdin; nothing for no lines', async () => {
  const runner = new FakeRunner();
  const bridge = new BridgeClient(runner, 'kmcp1');
  await bridge.batch([]);
  await bridge.batch(['fdb append 00:00:00:00:00:00 dev vx0 dst 10.0.0.2', 'mdb replace dev vx0 port vx0 grp 239.1.1.1 permanent dst 10.0.0.2']);
  assert.deepEqual(runner.calls, [
    {
      argv: ['bridge', '-batch', '-'],
      netns: 'kmcp1',
      input: 'fdb append 00:00:00:00:00:00 dev vx0 dst 10.0.0.2\nmdb replace dev vx0 port vx0 grp 239.1.1.1 permanent dst 10.0.0.2\n',
    },
  ]);
});

test('BridgeClient probes resolve with the result whatever the exit code', async () => {
  const runner = new FakeRunner().on('bridge mdb help', { code: 255, stderr: 'Usage: bridge mdb ...\n' }).on('bridge mdb add', { code: 2, stderr: 'Error: unknown option dst\n' });
  const bridge = new BridgeClient(runner);
  assert.equal((await bridge.mdbHelp()).code, 255);
  assert.equal((await bridge.probeMdbDst('kmcdoc1', '239.255.0.1', '192.0.2.1')).code, 2);
  assert.deepEqual(runner.commands(), ['bridge mdb help', 'bridge mdb add dev kmcdoc1 port kmcdoc1 grp 239.255.0.1 permanent dst 192.0.2.1']);
});

test('IpClient.bridge is the bridge command of the same namespace and runner', async () => {
  const runner = new FakeRunner();
  const ip = new IpClient(runner, 'kmcp2');
  await ip.bridge.batch(['fdb append 00:00:00:00:00:00 dev vx0 dst 10.0.0.3']);
  assert.equal(ip.bridge.runner, runner);
  assert.equal(runner.calls[0]?.netns, 'kmcp2');
});
