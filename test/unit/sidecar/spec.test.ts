import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { IpClient } from '../../../src/kernel/ip.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import { mergeOptions, validateConfig } from '../../../src/sidecar/config.js';
import { podOverlaySpec } from '../../../src/sidecar/spec.js';
import { fixture } from '../fixtures.js';

const config = (extra: Record<string, string | boolean> = {}) => validateConfig(mergeOptions({ setupOnly: true, ...extra }, {}));

/** A pod with eth0 (10.9.0.2/24), its default route via eth0, and iproute2 `version`. */
function pod(version = '6.15.0'): FakeRunner {
  return new FakeRunner()
    .on('ip -j route show default', { stdout: '[{"dst":"default","gateway":"10.9.0.1","dev":"eth0","flags":[]}]' })
    .on('ip -j -d link show dev eth0', { stdout: fixture('iproute2/addr-eth0.json') })
    .on('ip -j addr show dev eth0', { stdout: fixture('iproute2/addr-eth0.json') })
    .on('ip -V', { stdout: `ip utility, iproute2-${version}, libbpf 1.1.2\n` });
}

test('the spec from the namespace: underlay from the default route, pod IP its first address, selective replication', async () => {
  const runner = pod();
  const { spec, floodFallback } = await podOverlaySpec(new IpClient(runner, 'kmcp1'), config(), silentLogger());
  assert.equal(spec.underlay, 'eth0');
  assert.equal(spec.localIp, '10.9.0.2');
  assert.equal(spec.replication, 'selective');
  assert.equal(floodFallback, false);
  assert.ok(
    runner.calls.filter((c) => c.argv[1] !== '-V').every((c) => c.netns === 'kmcp1'),
    "read in the agent's namespace",
  );
});

test('an iproute2 without VXLAN MDB floods, and says it fell back', async () => {
  const { spec, floodFallback } = await podOverlaySpec(new IpClient(pod('6.1.0'), 'kmcp1'), config(), silentLogger());
  assert.equal(spec.replication, 'flood');
  assert.equal(floodFallback, true);
  const asked = await podOverlaySpec(new IpClient(pod('6.1.0'), 'kmcp1'), config({ replication: 'flood' }), silentLogger());
  assert.equal(asked.floodFallback, false, 'flood asked for is no fallback');
});

test('refusals name the flag: a pod IP not on the underlay, a missing interface', async () => {
  await assert.rejects(
    podOverlaySpec(new IpClient(pod(), 'kmcp1'), config({ podIp: '10.9.0.99' }), silentLogger()),
    (e: unknown) => e instanceof ConfigError && /^--pod-ip: 10\.9\.0\.99 is not an address of eth0/.test(e.message),
  );
  const none = new FakeRunner().on('ip -j -d link show dev eth9', { code: 1, stderr: 'Device "eth9" does not exist.\n' });
  await assert.rejects(
    podOverlaySpec(new IpClient(none, 'kmcp1'), config({ interface: 'eth9' }), silentLogger()),
    (e: unknown) => e instanceof ConfigError && /^--interface: device "eth9" does not exist/.test(e.message),
  );
});

/** An IPv6-only pod (recorded in an IPv6-only lab): eth0 has fd00:10:244:1::11/128 and no IPv4, an IPv6 default route only. */
function pod6(): FakeRunner {
  return new FakeRunner()
    .on('ip -j route show default', { stdout: '[]' })
    .on('ip -6 -j route show default', { stdout: fixture('iproute2/default6-pod.json') })
    .on('ip -j -d link show dev eth0', { stdout: fixture('iproute2/addr-pod-ipv6-only.json') })
    .on('ip -j addr show dev eth0', { stdout: fixture('iproute2/addr-pod-ipv6-only.json') })
    .on('ip -V', { stdout: 'ip utility, iproute2-6.15.0, libbpf 1.1.2\n' });
}

test('an IPv6-only pod: underlay from the IPv6 default route, the pod IP its global IPv6 address, vx0 carries it', async () => {
  const { spec } = await podOverlaySpec(new IpClient(pod6(), 'kmcp1'), config(), silentLogger());
  assert.equal(spec.underlay, 'eth0');
  assert.equal(spec.underlayMtu, 1430);
  assert.equal(spec.localIp, 'fd00:10:244:1::11');
  assert.equal(spec.localIp6, 'fd00:10:244:1::11');
  const given = await podOverlaySpec(new IpClient(pod6(), 'kmcp1'), config({ podIp: 'FD00:10:244:1:0::11' }), silentLogger());
  assert.equal(given.spec.localIp, 'fd00:10:244:1::11', '--pod-ip IPv6, in any spelling');
  await assert.rejects(
    podOverlaySpec(new IpClient(pod6(), 'kmcp1'), config({ podIp: 'fd00:10:244:1::99' }), silentLogger()),
    (e: unknown) => e instanceof ConfigError && /^--pod-ip: fd00:10:244:1::99 is not an address of eth0 \(fd00:10:244:1::11\)/.test(e.message),
  );
  const none = new FakeRunner().on('ip -j route show default', { stdout: '[]' }).on('ip -6 -j route show default', { stdout: '[]' });
  await assert.rejects(
    podOverlaySpec(new IpClient(none, 'kmcp1'), config(), silentLogger()),
    (e: unknown) => e instanceof ConfigError && /^--interface: there is no default route \(IPv4 or IPv6\)/.test(e.message),
  );
});
