import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpClient } from '../../../src/kernel/ip.js';
import { parseLinks } from '../../../src/kernel/parse.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { deliveryBuild, deliveryDevices, deliveryProblem, ensureDelivery } from '../../../src/node/delivery.js';
import { fixture } from '../fixtures.js';

const RECORDED = fixture('iproute2/node/delivery-links.json');
const byName = (json: string): Map<string, ReturnType<typeof parseLinks>[number]> => new Map(parseLinks(json).map((l) => [l.name, l]));

test('the delivery hop: names fit IFNAMSIZ for any VNI; the recorded build reads back as built', () => {
  const d = deliveryDevices(16_777_215);
  for (const n of Object.values(d)) assert.ok(n.length <= 15 && n.startsWith('kmc'), n);
  assert.equal(deliveryProblem(deliveryDevices(100), byName(RECORDED)), undefined);
  assert.deepEqual(deliveryBuild(deliveryDevices(100)).slice(0, 3), [
    'link add kmcdb100 type bridge stp_state 0 mcast_snooping 0',
    'link add kmcdi100 type veth peer name kmcdp100',
    'link add kmcdo100 type veth peer name kmcdr100',
  ]);
});

test('a hop missing a device, down, or with a port off the bridge is a problem', () => {
  const links = byName(RECORDED);
  const without = new Map(links);
  without.delete('kmcdr100');
  assert.equal(deliveryProblem(deliveryDevices(100), without), 'kmcdr100 missing');
  const down = new Map(links).set('kmcdb100', { ...links.get('kmcdb100')!, up: false });
  assert.equal(deliveryProblem(deliveryDevices(100), down), 'kmcdb100 down');
  const loose = new Map(links).set('kmcdo100', { ...links.get('kmcdo100')!, master: undefined });
  assert.equal(deliveryProblem(deliveryDevices(100), loose), 'kmcdo100 not a port of kmcdb100');
  assert.equal(deliveryProblem(deliveryDevices(200), links), 'kmcdb200 missing');
});

test('ensureDelivery: nothing when built; else deletes what is left and rebuilds in one batch', async () => {
  let json = RECORDED;
  const runner = new FakeRunner()
    .on('ip -j -d link show', () => ({ stdout: json }))
    .on('ip link del', {})
    .on('ip -batch -', {});
  assert.equal(await ensureDelivery(new IpClient(runner), 100), false);
  assert.deepEqual(runner.commands(), ['ip -j -d link show']);
  json = JSON.stringify(JSON.parse(RECORDED).filter((l: { ifname: string }) => !['kmcdo100', 'kmcdr100'].includes(l.ifname)));
  runner.calls.length = 0;
  assert.equal(await ensureDelivery(new IpClient(runner), 100), true);
  assert.deepEqual(runner.commands(), ['ip -j -d link show', 'ip link del dev kmcdb100', 'ip link del dev kmcdi100', 'ip link del dev kmcdp100', 'ip -batch -']);
  assert.equal(runner.calls.at(-1)!.input, `${deliveryBuild(deliveryDevices(100)).join('\n')}\n`);
});
