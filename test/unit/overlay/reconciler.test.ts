import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpClient } from '../../../src/kernel/ip.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import type { OverlaySpec } from '../../../src/overlay/desired.js';
import { desiredState } from '../../../src/overlay/desired.js';
import { OverlayReconciler } from '../../../src/overlay/reconciler.js';
import { fixture } from '../fixtures.js';

/** The recorded dual-stack vx0 (test/fixtures/iproute2/dual): what the kernel answers every read with. */
function kernel(): FakeRunner {
  const f = (name: string) => ({ stdout: fixture(`iproute2/dual/${name}.json`) });
  return new FakeRunner()
    .on('ip -j -d link show dev vx0', f('link'))
    .on('ip -j addr show dev vx0', f('addr'))
    .on('ip -j route show table all', f('routes'))
    .on('ip -6 -j route show table all', f('routes6'))
    .on('bridge -j fdb show dev vx0', f('fdb'))
    .on('bridge -j mdb show dev vx0', f('mdb'))
    .on('bridge -batch -', {})
    .on('ip -batch -', {});
}

const SPEC: OverlaySpec = {
  device: 'vx0',
  vni: 4242,
  port: 7471,
  underlay: 'eth0',
  underlayMtu: 1500,
  localIp: '10.244.1.11',
  localIp6: 'fd00:10:244:1::11',
  unregistered: 'drop',
  replication: 'selective',
};
const peers = (g: Record<string, string[]>) => ['10.244.1.12', '10.244.2.11', '10.244.2.12', '10.244.3.11', '10.244.3.12'].map((ip) => ({ ip, groups: g[ip] ?? [] }));
const JOINED = { '10.244.2.11': ['ff05::1:3', 'ff0e::db8:1'], '10.244.3.11': ['ff05::1:3', 'ff0e::db8:1'] };

test('IPv6 entries: the full read-back changes nothing, the fast path then applies only the delta, and nothing twice', async () => {
  const r = kernel();
  const rec = new OverlayReconciler(new IpClient(r, 'kmcx'), silentLogger());
  const full = await rec.reconcile(desiredState(SPEC, peers(JOINED)));
  assert.equal(full.changes, 0, JSON.stringify(full.plan));
  assert.ok(r.commands().includes('ip -6 -j route show table all'), 'a dual-stack vx0 reads the IPv6 routes');
  const n = r.calls.length;
  const same = await rec.reconcile(desiredState(SPEC, peers(JOINED)), { fast: true });
  assert.equal(same.changes, 0);
  assert.equal(r.calls.length, n, 'nothing changed: no command at all');
  const joined = await rec.reconcile(desiredState(SPEC, peers({ ...JOINED, '10.244.3.12': ['FF05:0::1:3'] })), { fast: true });
  assert.deepEqual(joined.plan.bridge, ['mdb replace dev vx0 port vx0 grp ff05::1:3 permanent dst 10.244.3.12']);
  assert.deepEqual(r.commands().slice(n), ['bridge -batch -'], 'the fast path reads nothing');
  const again = await rec.reconcile(desiredState(SPEC, peers({ ...JOINED, '10.244.3.12': ['ff05::1:3'] })), { fast: true });
  assert.equal(again.changes, 0);
});

test('an IPv4-only pod never reads IPv6 routes', async () => {
  const r = kernel();
  await new OverlayReconciler(new IpClient(r), silentLogger()).reconcile(desiredState({ ...SPEC, localIp6: undefined }, peers({})));
  assert.ok(!r.commands().some((c) => c.startsWith('ip -6')));
});
