import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IP_MONITOR, IpClient } from '../../../src/kernel/ip.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { fixture } from '../fixtures.js';

test('IpClient reads in its namespace with -j; a missing device reads as absent', async () => {
  const runner = new FakeRunner()
    .on('ip -j -d link show dev vx0', { stdout: fixture('iproute2/link.json') })
    .on('ip -j -d link show dev gone', { code: 1, stderr: 'Device "gone" does not exist.\n' })
    .on('ip -j maddr show', { stdout: fixture('iproute2/maddr-joined.json') });
  const ip = new IpClient(runner, 'kmcp1');
  assert.equal((await ip.link('vx0'))?.name, 'vx0');
  assert.equal(await ip.link('gone'), undefined);
  assert.ok((await ip.allMaddrs()).includes('239.1.1.7'));
  assert.ok(runner.calls.every((c) => c.netns === 'kmcp1'));
});

test('IpClient deletes links and probes without throwing on the exit code', async () => {
  const runner = new FakeRunner().on('ip link del', { code: 1, stderr: 'Cannot find device "x"\n' }).on('ip link add', { code: 2, stderr: 'Operation not permitted\n' });
  const ip = new IpClient(runner, 'kmcn1');
  assert.equal((await ip.deleteLink('x')).code, 1);
  assert.equal((await ip.probeVxlan('kmcdoc1', '16777001', '7479')).code, 2);
  await ip.defaultRoutes4Output();
  await ip.addrDetailsOutput('eth0');
  await ip.versionOutput();
  assert.deepEqual(runner.commands(), [
    'ip link del dev x',
    'ip link add kmcdoc1 type vxlan id 16777001 dstport 7479 nolearning',
    'ip -j -4 route show default',
    'ip -j -d addr show dev eth0',
    'ip -V',
  ]);
  assert.deepEqual(
    runner.calls.map((c) => c.netns),
    ['kmcn1', 'kmcn1', 'kmcn1', 'kmcn1', undefined],
    "the version is the tool's, not the namespace's",
  );
});

test('IpClient named namespaces: list, add, delete and pids run in our own namespace', async () => {
  const runner = new FakeRunner()
    .on('ip -j netns list', { stdout: '[{"name":"kmct1-n1p1","id":3},{"name":"kmct1-r"}]' })
    .on('ip netns pids kmct1-r', { stdout: '101\n202\n' })
    .on('ip netns pids gone', { code: 1, stderr: 'Cannot open network namespace\n' })
    .on('ip netns del gone', { code: 1 });
  const ip = new IpClient(runner, 'kmct1-n1');
  assert.deepEqual(await ip.netnsNames(), ['kmct1-n1p1', 'kmct1-r']);
  await ip.addNetns('kmct1-x');
  assert.equal((await ip.deleteNetns('gone')).code, 1);
  assert.deepEqual(await ip.netnsPids('kmct1-r'), [101, 202]);
  assert.deepEqual(await ip.netnsPids('gone'), []);
  assert.ok(runner.calls.every((c) => c.netns === undefined));
  assert.deepEqual(runner.commands().slice(1, 3), ['ip netns add kmct1-x', 'ip netns del gone']);
});

test('IP_MONITOR: the ip monitor command lines the agents stream', () => {
  assert.deepEqual(IP_MONITOR.linkRoute, ['ip', 'monitor', 'link', 'route']);
  assert.deepEqual(IP_MONITOR.maddress, ['ip', 'monitor', 'maddress']);
  assert.deepEqual(IP_MONITOR.maddressOneline, ['ip', '-o', 'monitor', 'maddress']);
  assert.deepEqual(IP_MONITOR.maddressAllNsid, ['ip', 'monitor', 'maddress', 'all-nsid']);
});
