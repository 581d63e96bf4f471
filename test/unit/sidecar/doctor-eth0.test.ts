import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkBoundSockets, checkCapture, gatherSockets, parseSs } from '../../../src/sidecar/doctor-eth0.js';
import type { AgentStatus } from '../../../src/sidecar/status-types.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { fixture } from '../fixtures.js';

test('ss: the bound device from sock_diag, raw sockets by protocol, process names when visible', () => {
  const s = parseSs(fixture('iproute2/ss-bound.txt'));
  assert.equal(s.length, 6);
  assert.deepEqual(s[0], { proto: 'raw', address: '0.0.0.0', port: 112, processes: ['keepalived'] });
  assert.deepEqual(s[2], { proto: 'udp', address: '0.0.0.0', port: 5400, device: 'eth0', processes: [] });
  assert.deepEqual(s[5], { proto: 'udp', address: '[::]', port: 5353, device: 'vx0', processes: [] });
});

test('bound-sockets: eth0-bound sockets warn with node mode as the fix; VRRP without a device too; others are fine', async () => {
  const all = parseSs(fixture('iproute2/ss-bound.txt'));
  const bound = checkBoundSockets({ sockets: all }, 'eth0');
  assert.equal(bound.status, 'WARN');
  assert.match(bound.detail, /udp 0\.0\.0\.0%eth0:5400/);
  assert.doesNotMatch(bound.detail, /vx0|5401/);
  assert.match(bound.fix ?? '', /node mode/);
  const vrrp = checkBoundSockets({ sockets: all.filter((x) => x.device !== 'eth0') }, 'eth0');
  assert.equal(vrrp.status, 'WARN');
  assert.match(vrrp.detail, /raw 0\.0\.0\.0 protocol 112 \(VRRP\) \(keepalived\)/);
  assert.equal(checkBoundSockets({ sockets: all.filter((x) => x.proto === 'udp' && x.device !== 'eth0') }, 'eth0').status, 'OK');
  assert.equal(checkBoundSockets({ error: 'spawn ss ENOENT' }, 'eth0').status, 'SKIP');
  const r = new FakeRunner().on('ss', { stdout: fixture('iproute2/ss-bound.txt') });
  assert.equal(((await gatherSockets(r)) as { sockets: unknown[] }).sockets.length, 6);
  assert.deepEqual(r.commands(), ['ss -H -a -n -p -u -w']);
});

test('capture: the path, its state and the groups per interface', () => {
  const base = { device: 'vx0', groupsByInterface: { vx0: ['239.1.1.1'], eth0: [] } } as unknown as AgentStatus;
  const on = checkCapture({ ...base, capture: { path: 'nft-netdev-egress', underlay: 'eth0', installed: true, forwarded: 7 } });
  assert.equal(on.status, 'OK');
  assert.match(on.detail, /egress chain on eth0 .* into vx0 \(7 frames so far\); groups vx0: 239\.1\.1\.1; eth0: none/);
  assert.equal(checkCapture({ ...base, capture: { path: 'off', underlay: 'eth0', installed: false, forwarded: 0 } }).status, 'WARN');
  assert.equal(checkCapture({ ...base, capture: { path: 'nft-netdev-egress', underlay: 'eth0', installed: false, forwarded: 0 } }).status, 'FAIL');
  const v6 = checkCapture({ ...base, capture: { path: 'nft-netdev-egress', underlay: 'eth0', installed: true, forwarded: 9, forwarded6: 4 } });
  assert.match(v6.detail, /moves multicast and broadcast into vx0 \(IPv6 multicast too, never ICMPv6; 9 frames so far, 4 of them IPv6\)/);
  assert.equal(checkCapture(base).status, 'SKIP', 'an older agent');
  assert.equal(checkCapture(undefined).status, 'SKIP');
});
