import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpClient } from '../../../src/kernel/ip.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { detectUplink, familyOf } from '../../../src/node/uplink.js';
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
  const noRoute = new FakeRunner().on('ip -j route show default', { stdout: '[]' }).on('ip -6 -j route show default', { stdout: '[]' });
  await assert.rejects(detectUplink(new IpClient(noRoute), {}), isConfig(/^--interface: no default route \(IPv4 or IPv6\)/));
  await assert.rejects(
    detectUplink(new IpClient(new FakeRunner().on('ip -j -d link show dev kmcnope', { code: 1, stderr: 'Device "kmcnope" does not exist.' })), { interface: 'kmcnope' }),
    isConfig(/^--interface: kmcnope does not exist/),
  );
  const noAddr = new FakeRunner().on('ip -j -d link show dev eth0', { stdout: LINK }).on('ip -j addr show dev eth0', { stdout: '[]' });
  await assert.rejects(detectUplink(new IpClient(noAddr), { interface: 'eth0' }), isConfig(/^--node-ip: eth0 has no IPv4 and no global IPv6 address/));
});

test('an IPv6-only node: the IPv6 default route names the uplink, its first global IPv6 address (not the link-local one) is the node IP', async () => {
  const link = JSON.stringify([{ ifindex: 2, ifname: 'kmcup', flags: ['UP'], mtu: 1500, linkinfo: { info_kind: 'veth' } }]);
  const runner = new FakeRunner()
    .on('ip -j route show default', { stdout: '[]' })
    .on('ip -6 -j route show default', { stdout: fixture('iproute2/default6.json') })
    .on('ip -j -d link show dev kmcup', { stdout: link })
    .on('ip -j addr show dev kmcup', { stdout: fixture('iproute2/addr-ipv6-only.json') });
  assert.deepEqual(await detectUplink(new IpClient(runner), {}), { uplink: 'kmcup', nodeIp: 'fd00:172:31:1::2', mtu: 1500 });
  assert.equal(familyOf('fd00:172:31:1::2'), 6);
  assert.equal(familyOf('172.31.1.2'), 4);
});
