import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { ConfigError, NotFoundError } from '../../../src/errors.js';
import { cutNode, findPod, healNode, labDown, labUp, parseNetnsList } from '../../../src/lab/lab.js';
import { buildSpec, planLab } from '../../../src/lab/plan.js';

test('parseNetnsList reads names with and without ids', () => {
  assert.deepEqual(parseNetnsList('kmct1-n1p1 (id: 4)\nkmct1-r\n\nother (id: 0)\n'), ['kmct1-n1p1', 'kmct1-r', 'other']);
});

test('labUp refuses an existing lab and names the way out', async () => {
  const runner = new FakeRunner().on('ip netns list', { stdout: 'kmcu1-r (id: 1)\n' });
  await assert.rejects(
    labUp(buildSpec({ id: 'u1' }), { runner }),
    (e: unknown) => e instanceof ConfigError && /build lab u1: it already exists .*kmcast lab down --id u1/.test(e.message),
  );
  assert.deepEqual(runner.commands(), ['ip netns list']);
});

test('cutNode / healNode: router side of the uplink down, then up with the pod route restored', async () => {
  const lab = planLab(buildSpec({ id: 'u2', nodes: ['calico', 'bridge'] }));
  const runner = new FakeRunner();
  await cutNode(lab, 2, runner);
  await healNode(lab, 2, runner);
  assert.deepEqual(
    runner.calls.map((c) => `${c.netns ?? ''}: ${c.argv.join(' ')}`),
    ['kmcu2-r: ip link set kmcn2 down', 'kmcu2-r: ip link set kmcn2 up', 'kmcu2-r: ip route replace 10.244.2.0/24 via 172.31.2.2'],
  );
  await assert.rejects(cutNode(lab, 3, runner), (e: unknown) => e instanceof NotFoundError && /nodes 1 to 2/.test(e.message));
});

test('findPod on a lab', () => {
  const lab = planLab(buildSpec({ id: 'u3' }));
  assert.equal(findPod(lab, 'n3p2').ip, '10.244.3.12');
  assert.throws(() => findPod(lab, 'x'), NotFoundError);
});

test('labDown with an id deletes only that lab, pods before nodes before the router', async () => {
  // Namespaces that do not exist on this machine: the process scan finds nothing to kill.
  const runner = new FakeRunner().on('ip netns list', {
    stdout: 'kmczzq9-r (id: 1)\nkmczzq9-n1\nkmczzq9-n1p1\nkmczzq99-n1p1\nkmcfix\nother\nkmczzq9-n2p1 (id: 7)\n',
  });
  const r = await labDown(runner, { id: 'zzq9' });
  assert.deepEqual(r, { namespaces: ['kmczzq9-n1p1', 'kmczzq9-n2p1', 'kmczzq9-n1', 'kmczzq9-r'], processes: 0 });
  assert.deepEqual(runner.commands(), [
    'ip netns list',
    'ip netns del kmczzq9-n1p1',
    'ip netns del kmczzq9-n2p1',
    'ip netns del kmczzq9-n1',
    'ip netns del kmczzq9-r',
  ]);
});

test('labDown reports namespaces it could not delete', async () => {
  const runner = new FakeRunner()
    .on('ip netns list', { stdout: 'kmczzq8-r\n' })
    .on('ip netns del', { code: 1, stderr: 'Cannot remove namespace file: Device or resource busy' });
  await assert.rejects(labDown(runner, { id: 'zzq8' }), /remove lab namespaces: 1 could not be deleted:\nkmczzq8-r: Cannot remove/);
});
