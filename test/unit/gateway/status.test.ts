import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GatewayStatus } from '../../../src/gateway/status-types.js';
import { evaluateGateway } from '../../../src/node/doctor.js';
import { formatNodeStatus } from '../../../src/node/status-format.js';
import type { NodeStatus } from '../../../src/node/status-types.js';

const gw = (over: Partial<GatewayStatus> = {}): GatewayStatus => ({
  service: 'app',
  interface: 'eth1',
  address: '192.168.250.1',
  mac: 'aa:bb:cc:00:00:01',
  ifindex: 7,
  active: true,
  activeGateway: '172.31.1.2',
  role: 'elected',
  snat: true,
  minTtl: 1,
  rate: 10000,
  groups: [
    { prefix: '239.10.0.0/16', direction: 'in' },
    { prefix: '224.0.0.251/32', direction: 'both' },
  ],
  joined: ['224.0.0.251', '239.10.0.1'],
  joinFailures: [],
  gateways: [{ ip: '172.31.2.2', state: 'alive' }],
  table: { installed: true },
  traffic: [
    { group: '239.10.0.1', direction: 'in', datagrams: 500, bytes: 60000, dropped: { rate: 0, ttl: 0, loop: 0 } },
    { group: '224.0.0.251', direction: 'out', datagrams: 3, bytes: 300, dropped: { rate: 0, ttl: 0, loop: 2 } },
  ],
  ...over,
});

test('doctor: the active gateway reports joins and counts; rate drops and failed joins warn', () => {
  const ok = evaluateGateway(gw());
  assert.equal(ok.status, 'OK');
  assert.match(ok.detail, /active; joined 224\.0\.0\.251,239\.10\.0\.1; in 500 datagrams, out 3; dropped: rate 0, ttl 0, loop 2/);
  const warn = evaluateGateway(gw({ traffic: [{ group: '239.10.0.1', direction: 'in', datagrams: 5, bytes: 1, dropped: { rate: 9 } }], joinFailures: [{ group: '239.10.0.2', error: 'ENOBUFS' }] }));
  assert.equal(warn.status, 'WARN');
  assert.match(warn.detail, /joins failed: 239\.10\.0\.2 \(ENOBUFS\); datagrams over --gateway-rate 10000\/s were dropped/);
  assert.equal(evaluateGateway(gw({ active: false, role: 'lower-ip-alive', activeGateway: '172.31.0.2' })).detail, 'standby: 172.31.0.2 is the active gateway');
  assert.equal(evaluateGateway(gw({ active: false, role: 'settling' })).status, 'WARN');
  const bad = evaluateGateway(gw({ table: { installed: false, lastError: 'Error: No such file or directory' } }));
  assert.equal(bad.status, 'FAIL');
  assert.match(bad.detail, /gateway table not installed: Error: No such file/);
});

test('status --node shows the gateway, its joins and per-group traffic', () => {
  const s: NodeStatus = {
    mode: 'node',
    version: '0.1.0',
    nodeIp: '172.31.1.2',
    uplink: 'kmcup',
    vxlanPort: 7472,
    controlPort: 7473,
    ready: true,
    authenticated: true,
    unregistered: 'drop',
    domains: [],
    ruleset: { installed: true, chains: 1 },
    allowList: { installed: true, peers: 2 },
    drops: { control: {} },
    gateway: gw(),
  };
  const text = formatNodeStatus(s, new Date());
  assert.match(text, /gateway ACTIVE {2}domain app {2}interface eth1 192\.168\.250\.1 {2}snat: on {2}rate: 10000\/s per group {2}min ttl: 1/);
  assert.match(text, /groups: 239\.10\.0\.0\/16=in 224\.0\.0\.251\/32=both/);
  assert.match(text, /other gateways: 172\.31\.2\.2 alive/);
  assert.match(text, /239\.10\.0\.1 +in +500 +60000 +0 +0 +0/);
  assert.match(formatNodeStatus({ ...s, gateway: gw({ active: false, role: 'lower-ip-alive', activeGateway: '172.31.0.2' }) }, new Date()), /gateway standby \(active: 172\.31\.0\.2\)/);
});
