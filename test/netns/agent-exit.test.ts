/**
 * The agent's exit codes, run for real in a namespace the test makes (never in the host's):
 * 2 for bad configuration naming the flag, 3 for a missing capability or kernel setting, each
 * with the fix; and nothing left behind after a failed start.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner } from '../../src/kernel/runner.js';
import { needRoot, privilegedReason, testLabId } from './harness.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';

function kmcast(args: string[], prefix: string[] = []): { code: number | null; stderr: string } {
  const r = spawnSync(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []), MAIN, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: r.status, stderr: r.stderr };
}

test('bad flags exit 2 naming the flag, before touching the kernel', () => {
  let r = kmcast(['agent', '--bogus']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '--bogus'/);
  r = kmcast(['agent', '--service', 's', '--vni', '0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--vni \(or KMCAST_VNI\): invalid value "0" \(must be an integer between 1 and 16777215\)/);
  r = kmcast(['agent']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /give --service NAME/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for a user mistake');
});

describe('agent start failures in a namespace', { skip: skip ? privilegedReason() : false }, () => {
  const ns = `kmc${testLabId('x')}`;
  const inNs = ['ip', 'netns', 'exec', ns];
  before(async () => {
    await runner.run(['ip', 'netns', 'add', ns]);
    const lines = ['link set lo up', 'link add kmcpeer type veth peer name eth0', 'addr add 10.77.0.2/24 dev eth0', 'link set eth0 up', 'link set kmcpeer up', 'route add default via 10.77.0.1'];
    await runner.run(['ip', '-batch', '-'], { netns: ns, input: `${lines.join('\n')}\n` });
  });
  after(async () => {
    await runner.run(['ip', 'netns', 'del', ns], { allowFail: true });
  });

  test('a missing interface exits 2 naming --interface', (t) => {
    if (!needRoot(t)) return;
    const r = kmcast(['agent', '--peers', '10.77.0.3', '--http', 'off', '--interface', 'kmcnope'], inNs);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--interface: device "kmcnope" does not exist/);
  });

  test('without CAP_NET_ADMIN it exits 3 and says which capability to add', (t) => {
    if (!needRoot(t)) return;
    const drop = [...inNs, 'setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin', '--'];
    const r = kmcast(['agent', '--peers', '10.77.0.3', '--http', 'off'], drop);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /missing CAP_NET_ADMIN.*capabilities\.add: \["NET_ADMIN"\]/);
  });

  test('strict rp_filter with a read-only /proc/sys exits 3 with the fix and leaves no vx0', async (t) => {
    if (!needRoot(t)) return;
    await runner.run(['sysctl', '-q', '-w', 'net.ipv4.conf.all.rp_filter=1', 'net.ipv4.conf.default.rp_filter=1'], { netns: ns });
    // As in an unprivileged container: /proc/sys mounted read-only in the agent's mount namespace.
    const ro = [...inNs, 'unshare', '-m', 'sh', '-c', 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"', 'sh'];
    const r = kmcast(['agent', '--peers', '10.77.0.3', '--http', 'off'], ro);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /reverse-path filtering is strict .*read-only.*rp_filter=2 \(loose\)/);
    assert.equal(await new IpClient(runner, ns).link('vx0'), undefined, 'nothing created');

    // Writable /proc/sys: the agent loosens vx0 itself and the setup succeeds.
    const ok = kmcast(['agent', '--peers', '10.77.0.3', '--http', 'off', '--setup-only'], inNs);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(await new IpClient(runner, ns).link('vx0'));
    assert.equal((await runner.run(['sysctl', '-n', 'net.ipv4.conf.vx0.rp_filter'], { netns: ns })).stdout.trim(), '2');
  });
});
