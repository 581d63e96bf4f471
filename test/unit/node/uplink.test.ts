import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpClient } from '../../../src/kernel/ip.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { detectUplink } from '../../../src/node/uplink.js';
import { fixture } from '../fixtures.js';

const LINK = JSON.stringify([{ ifindex: 2, ifname: 'eth0', flags: ['UP'], mtu: 9001, linkinfo: { info_kind: 'veth' } }]);
const ADDR = JSON.stringify([{ ifindex: 2, ifname: 'eth0', addr_info: [{ family: 'inet', local: '10.9.0.5', prefixlen: 24 }] }]);

test('the default route names the uplink; its first IPv4 address is the node IP', async () => {
  const runner = new FakeRunner()
    .on('ip -j route show default', { stdout: fixture('iproute2/default.json') })
    .on('ip -j -d link show dev eth0', { stdout: LINK })
    .on('ip -j addr show dev eth0', { stdout: ADDR });
  assert.deepEqual(await detectUplink(new IpClient(runner), {}), { uplink: 'eth0', nodeIp: '10.9.0.5', mtu: 9001 });
  assert.deepEqual(runner.commands(), ['ip -j route show default', 'ip -j -d link show dev eth0', 'ip -j addr show dev eth0']);
});

test('--interface and --node-ip are taken as given; each missing piece names its flag (exit 2)', async () => {
  const given = new FakeRunner().on('ip -j -d link show dev eth0', { stdout: LINK });
  assert.deepEqual(await detectUplink(new IpClient(given), { interface: 'eth0', nodeIp: '10.9.0.7' }), { uplink: 'eth0', nodeIp: '10.9.0.7', mtu: 9001 });
  assert.deepEqual(given.commands(), ['ip -j -d link show dev eth0']);
  const isConfig = (re: RegExp) => (e: Error & { exitCode?: number }) => e.exitCode === 2 && re.test(e.message);
  await assert.rejects(detectUplink(new IpClient(new FakeRunner().on('ip -j route show default', { stdout: '[]' })), {}), isConfig(/^--interface: no default route/));
  await assert.rejects(
    detectUplink(new IpClient(new FakeRunner().on('ip -j -d link show dev kmcnope', { code: 1, stderr: 'Device "kmcnope" does not exist.' })), { interface: 'kmcnope' }),
    isConfig(/^--interface: kmcnope does not exist/),
  );
  const noAddr = new FakeRunner().on('ip -j -d link show dev eth0', { stdout: LINK }).on('ip -j addr show dev eth0', { stdout: '[]' });
  await assert.rejects(detectUplink(new IpClient(noAddr), { interface: 'eth0' }), isConfig(/^--node-ip: eth0 has no IPv4 address/));
});
