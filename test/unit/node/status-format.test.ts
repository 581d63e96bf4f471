import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StatusUnavailableError } from '../../../src/sidecar/status-format.js';
import { formatNodeStatus, isNodeStatus, parseNodeStatus, peerNodesLine } from '../../../src/node/status-format.js';
import type { NodeStatus } from '../../../src/node/status-types.js';
import { gw } from '../gateway/status-fixture.js';

const status: NodeStatus = {
  mode: 'node',
  version: '0.1.0',
  nodeIp: '172.31.1.2',
  uplink: 'kmcup',
  vxlanPort: 7472,
  controlPort: 7473,
  ready: true,
  authenticated: true,
  unregistered: 'drop',
  domains: [
    {
      service: 'app.default.svc.cluster.local',
      vni: 100,
      device: 'kmcvx100',
      label: 'node:100/app.default.svc.cluster.local',
      listed: ['10.244.1.11', '10.244.2.11'],
      localMembers: [{ podIp: '10.244.1.11', hostVeth: 'kmcv1', netns: 'cni-1', groups: ['239.1.1.1'], programmed: true }],
      announced: true,
      groups: ['239.1.1.1'],
      peers: [{ ip: '172.31.2.2', state: 'alive', lastSeen: '2026-01-01T00:00:00.000Z', groups: [], sources: ['static'] }],
      entries: { fdb: 1, mdb: 1 },
    },
  ],
  ruleset: { installed: true, chains: 2 },
  allowList: { installed: true, peers: 1 },
  drops: { control: { bad_mac: 2, replay: 0 } },
};

test('a node status reads back and prints domains, members and peer nodes', () => {
  assert.ok(isNodeStatus(status));
  const s = parseNodeStatus(JSON.parse(JSON.stringify(status)), 'x');
  const text = formatNodeStatus(s, new Date('2026-01-01T00:00:02.000Z'));
  assert.match(text, /node agent 0\.1\.0 {2}node 172\.31\.1\.2/);
  assert.match(text, /domain app\.default\.svc\.cluster\.local {2}vni 100 {2}device kmcvx100/);
  assert.match(text, /POD +VETH +NETNS +PROGRAMMED +MTU +OVERSIZE +GROUPS/);
  assert.match(text, /10\.244\.1\.11 +kmcv1 +cni-1 +yes +- +0 +239\.1\.1\.1/);
  const sized = { ...status, domains: [{ ...status.domains[0]!, localMembers: [{ ...status.domains[0]!.localMembers[0]!, mtu: 1450, oversize: 12 }] }] };
  assert.match(formatNodeStatus(sized, new Date()), /10\.244\.1\.11 +kmcv1 +cni-1 +yes +1450 +12 +239\.1\.1\.1/);
  const routed = { ...status, domains: [{ ...status.domains[0]!, localMembers: [{ ...status.domains[0]!.localMembers[0]!, mtu: 1500, multicastMtu: 1430 }] }] };
  assert.match(formatNodeStatus(routed, new Date()), /10\.244\.1\.11 +kmcv1 +cni-1 +yes +1500 \(mcast 1430\) +0 +239\.1\.1\.1/, 'the multicast route MTU the agent set beside the MTU');
  assert.match(text, /172\.31\.2\.2 +alive +2\.0s ago/);
  assert.match(text, /control drops: bad_mac 2\n$/);
});

test('a sidecar status or garbage is refused with a clear message', () => {
  assert.throws(() => parseNodeStatus({ podIp: '10.0.0.1' }, 'http://x'), StatusUnavailableError);
  assert.throws(() => parseNodeStatus({ mode: 'node', nodeIp: '1.2.3.4', domains: [{}] }, 'http://x'), /domains/);
});

test('status --node shows the gateway, its joins and per-group traffic', () => {
  const s: NodeStatus = { ...status, gateway: gw() };
  const text = formatNodeStatus(s, new Date());
  assert.match(text, /gateway ACTIVE {2}domain app {2}interface eth1 192\.168\.250\.1 {2}snat: on {2}rate: 10000\/s per group, 100000\/s in total {2}min ttl: 1/);
  assert.match(text, /dropped: in rate 0 ttl 0 loop 0 total 0 full 0 {2}out rate 0 ttl 0 loop 2 total 0 full 0/);
  assert.doesNotMatch(text, /NOT joined/);
  assert.match(formatNodeStatus({ ...s, gateway: gw({ unjoined: { count: 3, groups: ['239.10.0.7'], max: 2 } }) }, new Date()), /NOT joined \(over 2\): 3 \(239\.10\.0\.7,\.\.\.\)/);
  assert.match(text, /groups: 239\.10\.0\.0\/16=in 224\.0\.0\.251\/32=both/);
  assert.match(text, /other gateways: 172\.31\.2\.2 alive/);
  assert.match(text, /239\.10\.0\.1 +in +500 +60000 +0 +0 +0/);
  assert.match(formatNodeStatus({ ...s, gateway: gw({ active: false, role: 'lower-ip-alive', activeGateway: '172.31.0.2' }) }, new Date()), /gateway standby \(active: 172\.31\.0\.2\)/);
});

test('peer nodes line: heard, waiting with the time left, degraded naming the missing nodes', () => {
  const p = { listed: 2, heard: 1, waitingFor: ['172.31.3.2'], degraded: false, boundMs: 5000, leftMs: 1200 };
  assert.match(peerNodesLine(p), /^1 of 2 listed heard: waiting for 172\.31\.3\.2 \(members start at the latest in 1\.2 s\)$/);
  assert.match(peerNodesLine({ ...p, degraded: true, leftMs: 0 }), /DEGRADED, 172\.31\.3\.2 not heard within 5\.0 s; members started without them/);
  assert.match(peerNodesLine({ ...p, heard: 2, waitingFor: [] }), /2 of 2 listed heard: members start with every other node known/);
});
