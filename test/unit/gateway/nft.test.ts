import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseGatewayGroups } from '../../../src/gateway/groups.js';
import type { GatewayPlane } from '../../../src/gateway/nft.js';
import { burstFor, expectedChains, gatewayDevices, gatewayMismatch, parseGateway, removeGatewayScript, renderGateway } from '../../../src/gateway/nft.js';
import { fixture } from '../fixtures.js';

const plane = (over: Partial<GatewayPlane> = {}): GatewayPlane => ({
  vni: 100,
  device: 'kmcvx100',
  delivery: 'kmcdr100',
  lan: 'eth1',
  lanIp: '192.168.250.1',
  lanMac: 'AA:BB:CC:00:00:01',
  members: ['kmcv1', 'kmcv2'],
  pods: ['10.244.1.11', '10.244.2.11'],
  otherGatewayIps: ['192.168.250.2'],
  otherGatewayMacs: ['aa:bb:cc:00:00:02'],
  groups: parseGatewayGroups(['239.10.0.0/16=in', '224.0.0.251=both', '239.2.2.2=out']),
  snat: true,
  minTtl: 1,
  rate: 1000,
  active: true,
  ...over,
});

test('inbound: configured UDP only, loops dropped first, then the rate, then into the domain', () => {
  const s = renderGateway(plane());
  assert.match(s, /set in-groups \{ type ipv4_addr; flags interval; elements = \{ 239\.10\.0\.0\/16, 224\.0\.0\.251 \}; \}/);
  assert.match(s, /set gw-addrs \{ type ipv4_addr; elements = \{ 192\.168\.250\.1, 192\.168\.250\.2 \}; \}/);
  assert.match(s, /set gw-macs \{ type ether_addr; elements = \{ aa:bb:cc:00:00:01, aa:bb:cc:00:00:02 \}; \}/);
  const lanIn = s.slice(s.indexOf('chain lan-in {'), s.indexOf('}', s.indexOf('fwd to')) + 1);
  assert.deepEqual(
    lanIn.split('\n').map((l) => l.trim()),
    [
      'chain lan-in {',
      'type filter hook ingress device "eth1" priority -500; policy accept;',
      'meta protocol != ip return',
      'ip daddr != @in-groups return',
      'meta l4proto != udp return',
      'ether saddr @gw-macs update @in-loop { ip daddr } drop',
      'ip saddr @gw-addrs update @in-loop { ip daddr } drop',
      'ip saddr @pods update @in-loop { ip daddr } drop',
      'update @in-meter { ip daddr limit rate over 1000/second burst 100 packets } update @in-rate { ip daddr } drop',
      'update @in-pass { ip daddr }',
      'dup to "kmcv1" dup to "kmcv2" fwd to "kmcvx100"',
      '}',
    ],
  );
});

test('outbound: single groups, pod sources only, never a drop on the domain path, SNAT on egress', () => {
  const s = renderGateway(plane({ minTtl: 2 }));
  assert.match(s, /set out-groups \{ type ipv4_addr; flags interval; elements = \{ 224\.0\.0\.251, 239\.2\.2\.2 \}; \}/);
  const out = s.slice(s.indexOf('chain out {'), s.indexOf('chain vx-in'));
  assert.match(out, /^chain out \{\n\s+meta protocol != ip return\n/, 'a frame that is not IPv4 (ARP, IPv6) is never copied out');
  assert.match(out, /ip saddr != @pods update @out-loop \{ ip daddr \} return/);
  assert.match(out, /ip ttl < 2 update @out-ttl \{ ip daddr \} return/);
  assert.match(out, /dup to "eth1"/);
  assert.doesNotMatch(out, /drop/);
  assert.match(s, /chain vx-in \{\n\s+type filter hook ingress device "kmcdr100" priority -510; policy accept;\n\s+jump out/);
  assert.match(s, /chain vx-out \{\n\s+type filter hook egress device "kmcvx100" priority -510; policy accept;\n\s+jump out/);
  assert.match(s, /chain lan-snat \{[^}]*ether saddr set aa:bb:cc:00:00:01 ip saddr set 192\.168\.250\.1/);
  assert.doesNotMatch(renderGateway(plane({ snat: false })), /lan-snat/);
});

test('a standby gateway keeps its sets but has no chain; no rate limit at 0; empty sets render', () => {
  const standby = renderGateway(plane({ active: false }));
  assert.doesNotMatch(standby, /chain /);
  assert.match(standby, /set in-pass \{ type ipv4_addr; size 65536; flags dynamic; counter; \}/);
  assert.deepEqual([...expectedChains(plane({ active: false }))], []);
  assert.doesNotMatch(renderGateway(plane({ rate: 0 })), /limit rate/);
  assert.match(renderGateway(plane({ pods: [], otherGatewayIps: [] })), /set pods \{ type ipv4_addr; \}/);
  const inOnly = plane({ groups: parseGatewayGroups(['239.10.0.0/16=in']) });
  assert.deepEqual([...expectedChains(inOnly).keys()], ['lan-in']);
  assert.deepEqual(gatewayDevices(inOnly), ['eth1', 'kmcv1', 'kmcv2', 'kmcvx100']);
  assert.equal(renderGateway(plane()).split('\n')[1], 'delete table netdev kmcast-gw');
  assert.equal(removeGatewayScript(), 'table netdev kmcast-gw\ndelete table netdev kmcast-gw\n');
  assert.equal(burstFor(1000), 100);
  assert.equal(burstFor(5), 10);
});

test('read-back of a live table: chains, rule counts and per-group counters', () => {
  const back = parseGateway(fixture('iproute2/nft-gateway-table.json'));
  assert.deepEqual(Object.fromEntries(back.chains), { 'lan-in': 10, out: 8, 'vx-in': 1, 'vx-out': 1, 'lan-snat': 3 });
  assert.equal(back.stale, false);
  assert.deepEqual(back.counters.get('out-pass')?.get('239.2.2.2'), { packets: 2, bytes: 66 });
  assert.deepEqual(back.counters.get('out-ttl')?.get('239.2.2.2'), { packets: 1, bytes: 33 });
  assert.equal(back.counters.get('in-pass')?.size, 0);
  // The fixture was rendered from this plane (device kmcb0, lan kmcb1, TTL floor 2, rate 1000).
  const live = plane({ device: 'kmcb0', lan: 'kmcb1', minTtl: 2 });
  assert.equal(gatewayMismatch(live, back), undefined);
  assert.equal(gatewayMismatch(plane({ device: 'kmcb0', lan: 'kmcb1', minTtl: 1 }), back), 'chain lan-in has 10 rules, not 9');
  assert.equal(gatewayMismatch(plane({ active: false }), back), 'unexpected chain lan-in');
  assert.equal(gatewayMismatch(live, undefined), 'table missing');
});

test('a dup target whose device was deleted shows as an ifindex: stale', () => {
  const back = parseGateway(fixture('iproute2/nft-gateway-stale.json'));
  assert.equal(back.stale, true);
  assert.equal(gatewayMismatch(plane({ device: 'kmcb0', lan: 'kmcb1', minTtl: 2 }), back), 'a chain points at a deleted device');
  assert.deepEqual(parseGateway('not json'), { chains: new Map(), stale: false, counters: new Map() });
});
