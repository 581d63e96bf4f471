import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { procSysWritable, readRpFilter, rpFilterKey, trySetLooseRpFilter } from '../../../src/sidecar/host.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { FakeSysctl, SysctlClient } from '../../../src/kernel/sysctl.js';

test('SysctlClient in our own namespace: the file under /proc/sys, no process', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kmc-sysctl-'));
  try {
    await mkdir(join(root, 'net/ipv4/conf/eth0.100'), { recursive: true });
    await writeFile(join(root, 'net/ipv4/conf/eth0.100/rp_filter'), '1\n');
    const runner = new FakeRunner();
    const sysctl = new SysctlClient(runner, undefined, root);
    assert.equal(await sysctl.read('net/ipv4/conf/eth0.100/rp_filter'), '1');
    assert.equal(await sysctl.writable('net/ipv4/conf/eth0.100/rp_filter'), true);
    await sysctl.write('net/ipv4/conf/eth0.100/rp_filter', 2);
    assert.equal(await readFile(join(root, 'net/ipv4/conf/eth0.100/rp_filter'), 'utf8'), '2\n');
    assert.equal(await sysctl.writable('net/ipv4/conf/missing/rp_filter'), false);
    await assert.rejects(sysctl.read('net/ipv4/conf/missing/rp_filter'), /ENOENT/);
    assert.deepEqual(runner.calls, []);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('SysctlClient in another namespace: sysctl through the runner, the key with slashes', async () => {
  const runner = new FakeRunner().on('sysctl -n', { stdout: '1\n' }).on('test -w', { code: 1 });
  const sysctl = new SysctlClient(runner, 'kmcp1');
  assert.equal(await sysctl.read('net/ipv4/conf/vx0/rp_filter'), '1');
  await sysctl.write('net/ipv4/conf/vx0/rp_filter', 2);
  assert.equal(await sysctl.writable('net/ipv4/conf/all/rp_filter'), false);
  assert.deepEqual(runner.commands(), ['sysctl -n net/ipv4/conf/vx0/rp_filter', 'sysctl -q -w net/ipv4/conf/vx0/rp_filter=2', 'test -w /proc/sys/net/ipv4/conf/all/rp_filter']);
  assert.ok(runner.calls.every((c) => c.netns === 'kmcp1'));
});

test('SysctlClient refuses keys that are not paths under /proc/sys', async () => {
  const sysctl = new SysctlClient(new FakeRunner());
  for (const bad of ['/etc/passwd', 'net/../../etc/passwd', 'net//x', '']) await assert.rejects(sysctl.read(bad), /not a sysctl key/);
});

test('rp_filter helpers act through the Sysctl they are given', async () => {
  const sysctl = new FakeSysctl({ [rpFilterKey('all')]: 1, [rpFilterKey('vx0')]: 1 });
  assert.equal(await procSysWritable(sysctl), true);
  assert.equal(await trySetLooseRpFilter(sysctl, 'vx0'), true);
  assert.equal(await readRpFilter(sysctl, 'vx0'), 2);
  assert.deepEqual(sysctl.writes, [{ key: 'net/ipv4/conf/vx0/rp_filter', value: '2' }]);
  sysctl.readOnly = true;
  assert.equal(await procSysWritable(sysctl), false);
  assert.equal(await trySetLooseRpFilter(sysctl, 'vx0'), false);
});
