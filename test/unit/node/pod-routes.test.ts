import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpClient } from '../../../src/kernel/ip.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import { PodMtuRoutes } from '../../../src/node/pod-routes.js';
import { fixture } from '../fixtures.js';

/** A recorded pod namespace (test/fixtures/iproute2/pod6): eth0 (index 2) at MTU 1500, IPv6 only; with or without our route. */
function pod(withRoute: () => boolean): FakeRunner {
  return new FakeRunner()
    .on('ip -j -d link show', { stdout: fixture('iproute2/pod6/links.json') })
    .on('ip -6 -j route show table all', () => ({ stdout: fixture(withRoute() ? 'iproute2/pod6/routes6-mtu.json' : 'iproute2/pod6/routes6.json') }))
    .on('ip -batch -', {});
}

const batches = (r: FakeRunner): string[] => r.calls.filter((c) => c.argv.join(' ') === 'ip -batch -').map((c) => `${c.netns}: ${(c.input ?? '').trim()}`);
const M = { ip: 'fd00:10:244:1::11', netns: 'cni-1', podIndex: 2, mtu: 1500 };

test('a pod over what the IPv6 underlay carries gets the route once; converged, it is only read; a pod that left loses it', async () => {
  let has = false;
  const r = pod(() => has);
  const routes = new PodMtuRoutes((ns) => new IpClient(r, ns), silentLogger());
  await routes.sync([M], 1430);
  assert.deepEqual(batches(r), ['cni-1: route replace multicast ff00::/8 dev eth0 table local metric 2 mtu 1430']);
  assert.equal(routes.mtuOf(M.ip), 1430);
  has = true;
  await routes.sync([M], 1430);
  assert.equal(batches(r).length, 1, 'the recorded route is ours at the right MTU: nothing to do');
  await routes.sync([], 1430);
  assert.deepEqual(batches(r).slice(1), ['cni-1: route del multicast ff00::/8 dev eth0 table local metric 2'], "ours only: never the kernel's metric 256 route");
  assert.equal(routes.mtuOf(M.ip), undefined);
});

test('drift: a route removed by someone is put back at the next pass; a pod re-created on the same IP gets it in its new namespace', async () => {
  let has = false;
  const r = pod(() => has);
  const routes = new PodMtuRoutes((ns) => new IpClient(r, ns), silentLogger());
  await routes.sync([M], 1430);
  has = false; // removed
  await routes.sync([M], 1430);
  await routes.sync([{ ...M, netns: 'cni-2' }], 1430);
  assert.deepEqual(
    batches(r).map((b) => b.split(':')[0]),
    ['cni-1', 'cni-1', 'cni-2'],
  );
});

test('no read at all for a pod that fits or on an IPv4 underlay; a failing pod is skipped, the others still get theirs', async () => {
  const r = pod(() => false);
  const routes = new PodMtuRoutes((ns) => new IpClient(r, ns), silentLogger());
  await routes.sync([{ ...M, mtu: 1430 }], 1430);
  await routes.sync([M], undefined);
  assert.deepEqual(r.commands(), [], 'a pod at the carried MTU, and an IPv4 underlay, cost no command');

  const failing = new FakeRunner().on('ip -j -d link show', { code: 1, stderr: 'Cannot open network namespace "gone": No such file or directory' });
  const mixed = new PodMtuRoutes((ns) => new IpClient(ns === 'gone' ? failing : r, ns), silentLogger());
  await mixed.sync([{ ...M, ip: 'fd00:10:244:1::12', netns: 'gone' }, M], 1430);
  assert.deepEqual(batches(r), ['cni-1: route replace multicast ff00::/8 dev eth0 table local metric 2 mtu 1430']);
  assert.equal(mixed.mtuOf('fd00:10:244:1::12'), undefined);
});
