/**
 * The sidecar agent against fake kernel clients: every ip, bridge and nft command goes through the
 * FakeRunner (in the agent's namespace), rp_filter through a FakeSysctl, nothing touches the
 * machine. The agent checks its own CAP_NET_ADMIN first (from /proc/self/status), so these run
 * where the test process holds it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent } from '../../../src/sidecar/agent.js';
import { mergeOptions, validateConfig } from '../../../src/sidecar/config.js';
import { hasNetAdmin, rpFilterKey } from '../../../src/sidecar/host.js';
import { CapabilityError } from '../../../src/errors.js';
import { FakeMonitors } from '../../../src/kernel/monitor.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { FakeSysctl } from '../../../src/kernel/sysctl.js';
import { silentLogger } from '../../../src/log.js';
import { fixture } from '../fixtures.js';

const skip = (await hasNetAdmin()) ? false : 'the agent checks that it holds CAP_NET_ADMIN before anything else';
const NS = 'kmcp1';

function config(extra: Record<string, string | boolean> = {}) {
  return validateConfig(mergeOptions({ setupOnly: true, interface: 'eth0', capture: 'off', insecureNoAllowlist: true, ...extra }, {}));
}

/** A pod with eth0 (10.9.0.2/24) and, once an `ip -batch` created it, vx0. */
function podKernel(): FakeRunner {
  let vx0 = false;
  return new FakeRunner()
    .on('ip -j -d link show dev eth0', { stdout: fixture('iproute2/addr-eth0.json') })
    .on('ip -j addr show dev eth0', { stdout: fixture('iproute2/addr-eth0.json') })
    .on('ip -V', { stdout: 'ip utility, iproute2-6.15.0, libbpf 1.1.2\n' })
    .on('ip -batch -', (call) => {
      if (call.input?.includes('link add vx0')) vx0 = true;
      return {};
    })
    .on('ip -j -d link show dev vx0', () => (vx0 ? { stdout: fixture('iproute2/link.json') } : { code: 1, stderr: 'Device "vx0" does not exist.\n' }))
    .on('ip -j route show table all', { stdout: '[]' });
}

test('agent --setup-only on fakes: vx0 made in its namespace, rp_filter loosened through the Sysctl', { skip }, async () => {
  const runner = podKernel();
  const sysctl = new FakeSysctl({ [rpFilterKey('all')]: 1, [rpFilterKey('default')]: 1, [rpFilterKey('vx0')]: 1 });
  const agent = new Agent(config(), { runner, monitors: new FakeMonitors(), sysctl, log: silentLogger(), netns: NS });
  await agent.start();
  assert.ok(
    runner.calls.every((c) => c.netns === NS || c.argv.join(' ') === 'ip -V'),
    "every kernel command in the agent's namespace",
  );
  const batch = runner.calls.find((c) => c.argv.join(' ') === 'ip -batch -');
  assert.match(batch?.input ?? '', /^link add vx0 type vxlan id 4242 dstport 7471 dev eth0 local 10\.9\.0\.2/m);
  // Set after vx0 is created, and checked again at the end of the start.
  assert.ok(sysctl.writes.length > 0 && sysctl.writes.every((w) => w.key === 'net/ipv4/conf/vx0/rp_filter' && w.value === '2'));
  assert.equal(await sysctl.read(rpFilterKey('vx0')), '2');
  assert.ok(runner.commands().includes('nft delete table ip kmcast'), 'an allow-list an earlier agent left is removed (--insecure-no-allowlist)');
});

test('agent on fakes: strict rp_filter on a read-only /proc/sys stops the start before vx0 exists', { skip }, async () => {
  const runner = podKernel();
  const sysctl = new FakeSysctl({ [rpFilterKey('all')]: 1, [rpFilterKey('default')]: 1 });
  sysctl.readOnly = true;
  const agent = new Agent(config(), { runner, monitors: new FakeMonitors(), sysctl, log: silentLogger(), netns: NS });
  await assert.rejects(agent.start(), (e: unknown) => e instanceof CapabilityError && /read-only/.test(e.message));
  assert.ok(!runner.commands().includes('ip -batch -'), 'nothing was created');
  assert.deepEqual(sysctl.writes, []);
});

test('agent on fakes, an IPv6-only pod: vx0 over the pod IPv6 address, the ip6 table, no rp_filter check to block it', { skip }, async () => {
  let vx0 = false;
  const runner = new FakeRunner()
    .on('ip -j -d link show dev eth0', { stdout: fixture('iproute2/addr-pod-ipv6-only.json') })
    .on('ip -j addr show dev eth0', { stdout: fixture('iproute2/addr-pod-ipv6-only.json') })
    .on('ip -V', { stdout: 'ip utility, iproute2-6.15.0, libbpf 1.1.2\n' })
    .on('ip -batch -', (call) => {
      if (call.input?.includes('link add vx0')) vx0 = true;
      return {};
    })
    .on('ip -j -d link show dev vx0', () => (vx0 ? { stdout: fixture('iproute2/link-vxlan6.json') } : { code: 1, stderr: 'Device "vx0" does not exist.\n' }))
    .on('ip -j route show table all', { stdout: '[]' });
  // Strict and read-only: it would stop an IPv4 pod (above); IPv6 has no reverse-path sysctl.
  const sysctl = new FakeSysctl({ [rpFilterKey('all')]: 1, [rpFilterKey('default')]: 1 });
  sysctl.readOnly = true;
  const agent = new Agent(config(), { runner, monitors: new FakeMonitors(), sysctl, log: silentLogger(), netns: NS });
  await agent.start();
  const batch = runner.calls.find((c) => c.argv.join(' ') === 'ip -batch -' && c.input?.includes('link add vx0'));
  assert.match(batch?.input ?? '', /^link add vx0 type vxlan id 4242 dstport 7471 dev eth0 local fd00:10:244:1::11/m);
  assert.match(batch?.input ?? '', /^link set vx0 mtu 1360 up$/m, 'eth0 (1430) less VXLAN over IPv6');
  assert.match(batch?.input ?? '', /^addr add fd00:10:244:1::11\/128 dev vx0/m);
  assert.doesNotMatch(batch?.input ?? '', /\/32|192\.0\.2\.1/, 'no IPv4 address, no IPv4 blackhole');
  assert.deepEqual(sysctl.writes, []);
  assert.ok(runner.commands().includes('nft delete table ip6 kmcast'), 'the allow-list is in the ip6 family');
  assert.equal((await agent.status()).podIp, 'fd00:10:244:1::11');
});
