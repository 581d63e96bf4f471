import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../../src/iproute2/runner.js';
import { ConfigError, NotFoundError } from '../../../src/errors.js';
import { cutNode, findPod, healNode, labUp, parseNetnsList } from '../../../src/lab/lab.js';
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
