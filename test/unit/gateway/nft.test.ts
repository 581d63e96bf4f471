import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseGatewayGroups } from '../../../src/gateway/groups.js';
import type { GatewayPlane } from '../../../src/gateway/nft.js';
import { burstFor, deliveryRules, expectedChains, gatewayDevices, gatewayMismatch, parseGateway, removeGatewayScript, renderGateway } from '../../../src/gateway/nft.js';
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
  rateTotal: 10000,
  active: true,
  ...over,
});

test('inbound: configured UDP only, loops dropped first, then the group rate, a full meter, the total rate, then into the domain', () => {
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
      'ether saddr @gw-macs goto in-drop-loop',
      'ip saddr @gw-addrs goto in-drop-loop',
      'ip saddr @pods goto in-drop-loop',
      'update @in-meter { ip daddr limit rate over 1000/second burst 100 packets } goto in-drop-rate',
      'ip daddr != @in-meter goto in-drop-full',
      'limit name "in-total" goto in-drop-total',
      'update @in-pass { ip daddr }',
      'dup to "kmcv1" dup to "kmcv2" fwd to "kmcvx100"',
      '}',
    ],
  );
  // A drop is counted per group where the set has room, and always in the reason's counter: a
  // full counter set must not turn the drop into a pass (the update does not match when full).
  assert.match(s, /chain in-drop-rate \{\n\s+update @in-rate \{ ip daddr \}\n\s+counter name "in-drop-rate" drop\n\s+\}/);
  assert.match(s, /chain in-drop-full \{\n\s+counter name "in-drop-full" drop\n\s+\}/);
  assert.match(s, /chain in-drop-total \{\n\s+counter name "in-drop-total" drop\n\s+\}/);
  assert.match(s, /counter in-drop-total \{ \}/);
  const noTotal = renderGateway(plane({ rateTotal: 0, rate: 0 }));
  assert.doesNotMatch(noTotal, /limit |@in-meter \{/);
  assert.match(s, /limit in-total \{ rate over 10000\/second burst 1000 packets \}/, 'one token bucket per direction, for both families');
  assert.match(renderGateway(plane({ rate: 0 })), /limit name "in-total" goto in-drop-total/, 'the total applies without a per-group rate');
  assert.doesNotMatch(renderGateway(plane({ rate: 0 })), /!= @in-meter/, 'no meter, no full drop');
});

test('outbound: single groups, pod sources only, never a drop on the domain path, SNAT on egress', () => {
  const s = renderGateway(plane({ minTtl: 2 }));
  assert.match(s, /set out-groups \{ type ipv4_addr; flags interval; elements = \{ 224\.0\.0\.251, 239\.2\.2\.2 \}; \}/);
  const out = s.slice(s.indexOf('chain out {'), s.indexOf('chain vx-in'));
  assert.match(out, /^chain out \{\n\s+meta protocol != ip return\n/, 'a frame that is not IPv4 (ARP, IPv6) is never copied out');
  assert.match(out, /ip saddr != @pods goto out-drop-loop/);
  assert.match(out, /ip ttl < 2 goto out-drop-ttl/);
  assert.match(s, /chain out-drop-ttl \{\n\s+update @out-ttl \{ ip daddr \}\n\s+counter name "out-drop-ttl" return\n/);
  assert.doesNotMatch(s.slice(s.indexOf('chain out-drop-rate')), / drop\n/, "the out drop chains return (no copy out), never drop the domain's own traffic");
  assert.match(out, /dup to "eth1"/);
  assert.doesNotMatch(out, / drop$/m);
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
  assert.doesNotMatch(renderGateway(plane({ rate: 0, rateTotal: 0 })), /limit /);
  assert.match(renderGateway(plane({ pods: [], otherGatewayIps: [] })), /set pods \{ type ipv4_addr; \}/);
  const inOnly = plane({ groups: parseGatewayGroups(['239.10.0.0/16=in']) });
  assert.deepEqual([...expectedChains(inOnly).keys()], ['lan-in', 'in-drop-rate', 'in-drop-ttl', 'in-drop-loop', 'in-drop-total', 'in-drop-full']);
  assert.deepEqual(gatewayDevices(inOnly), ['eth1', 'kmcv1', 'kmcv2', 'kmcvx100']);
  assert.equal(renderGateway(plane()).split('\n')[1], 'delete table netdev kmcast-gw');
  assert.equal(removeGatewayScript(), 'table netdev kmcast-gw\ndelete table netdev kmcast-gw\n');
  assert.equal(burstFor(1000), 100);
  assert.equal(burstFor(5), 10);
});

test('read-back of a live table: chains, rule counts and per-group counters', () => {
  const back = parseGateway(fixture('iproute2/nft-gateway-table.json'));
  const drops = { rate: 2, ttl: 2, loop: 2, total: 1, full: 1 };
  const dropChains = (d: string): Record<string, number> => Object.fromEntries(Object.entries(drops).map(([r, n]) => [`${d}-drop-${r}`, n]));
  assert.deepEqual(Object.fromEntries(back.chains), { 'lan-in': 12, out: 10, 'vx-in': 1, 'vx-out': 1, 'lan-snat': 3, ...dropChains('in'), ...dropChains('out') });
  assert.equal(back.stale, false);
  assert.deepEqual(back.counters.get('out-pass')?.get('239.2.2.2'), { packets: 2, bytes: 66 });
  assert.deepEqual(back.counters.get('out-ttl')?.get('239.2.2.2'), { packets: 1, bytes: 33 });
  assert.equal(back.counters.get('in-pass')?.size, 0);
  assert.deepEqual(back.drops.get('out-drop-ttl'), { packets: 1, bytes: 33 });
  assert.deepEqual(back.drops.get('in-drop-full'), { packets: 7, bytes: 700 });
  assert.equal(back.drops.size, 10);
  // The fixture was rendered from this plane (device kmcb0, lan kmcb1, TTL floor 2, rate 1000, total 10000).
  const live = plane({ device: 'kmcb0', lan: 'kmcb1', minTtl: 2 });
  assert.equal(gatewayMismatch(live, back), undefined);
  assert.equal(gatewayMismatch(plane({ device: 'kmcb0', lan: 'kmcb1', minTtl: 1 }), back), 'chain lan-in has 12 rules, not 11');
  assert.equal(gatewayMismatch(plane({ active: false }), back), 'unexpected chain lan-in');
  assert.equal(gatewayMismatch(live, undefined), 'table missing');
});

test('a dup target whose device was deleted shows as an ifindex: stale', () => {
  const back = parseGateway(fixture('iproute2/nft-gateway-stale.json'));
  assert.equal(back.stale, true);
  assert.equal(gatewayMismatch(plane({ device: 'kmcb0', lan: 'kmcb1', minTtl: 2 }), back), 'a chain points at a deleted device');
  assert.deepEqual(parseGateway('not json'), { chains: new Map(), stale: false, counters: new Map(), drops: new Map() });
});

test('lan-in with 100 local members: the copies in rules the kernel takes, only the last forwards; the read-back count agrees', () => {
  const members = Array.from({ length: 100 }, (_, i) => `kmcv${i + 1}`);
  const p = plane({ members });
  const script = renderGateway(p);
  const lanIn = script.slice(script.indexOf('chain lan-in'), script.indexOf('\n  }', script.indexOf('chain lan-in')));
  const carrying = lanIn.split('\n').filter((l) => l.includes('dup to') || l.includes('fwd to'));
  assert.deepEqual(
    carrying.map((l) => [(l.match(/dup to/g) ?? []).length, l.includes('fwd to')]),
    [
      [48, false],
      [48, false],
      [4, true],
    ],
  );
  assert.equal(deliveryRules(100), 3);
  assert.equal(deliveryRules(0), 1, 'no local member: the forward alone');
  const rules = lanIn.split('\n').filter((l) => /^\s{4}\S/.test(l) && !l.includes('type filter hook')).length;
  assert.equal(expectedChains(p).get('lan-in'), rules);
});

const dual = (over: Partial<GatewayPlane> = {}): GatewayPlane =>
  plane({
    groups: parseGatewayGroups(['239.10.0.0/16=in', 'ff05::1:0/112=in', 'ff02::fb=in', 'ff05::2:2=out', '239.2.2.2=out']),
    lanIp6: 'fd00:250::1',
    pods6: ['fd00:10:244:1::11', 'fd00:10:244:2::11'],
    ...over,
  });

test('IPv6 groups: their own sets and chains, entered by protocol; ICMPv6 (ND, MLD) and other groups return untouched', () => {
  const s = renderGateway(dual({ minTtl: 2 }));
  assert.match(s, /set in-groups6 \{ type ipv6_addr; flags interval; elements = \{ ff05::1:0\/112, ff02::fb \}; \}/);
  assert.match(s, /set out-groups6 \{ type ipv6_addr; flags interval; elements = \{ ff05::2:2 \}; \}/);
  assert.match(s, /set pods6 \{ type ipv6_addr; elements = \{ fd00:10:244:1::11, fd00:10:244:2::11 \}; \}/);
  assert.match(s, /set gw-addrs6 \{ type ipv6_addr; elements = \{ fd00:250::1 \}; \}/);
  assert.match(s, /set in-pass6 \{ type ipv6_addr; size 65536; flags dynamic; counter; \}/);
  const chain = (name: string): string[] => {
    const from = s.indexOf(`chain ${name} {`);
    return s
      .slice(from, s.indexOf('\n  }', from))
      .split('\n')
      .slice(1)
      .map((l) => l.trim());
  };
  assert.deepEqual(chain('lan-in').slice(1, 3), ['meta protocol ip6 goto lan-in6', 'meta protocol != ip return'], 'IPv6 first, then everything else that is not IPv4 returns');
  assert.deepEqual(chain('lan-in6'), [
    'ip6 daddr != @in-groups6 return',
    'meta l4proto != udp return',
    'ether saddr @gw-macs goto in-drop-loop',
    'ip6 saddr @gw-addrs6 goto in-drop-loop',
    'ip6 saddr @pods6 goto in-drop-loop',
    'ip6 hoplimit < 2 goto in-drop-ttl',
    'update @in-meter6 { ip6 daddr limit rate over 1000/second burst 100 packets } goto in-drop-rate',
    'ip6 daddr != @in-meter6 goto in-drop-full',
    'limit name "in-total" goto in-drop-total',
    'update @in-pass6 { ip6 daddr }',
    'dup to "kmcv1" dup to "kmcv2" fwd to "kmcvx100"',
  ]);
  assert.deepEqual(chain('out6'), [
    'ip6 daddr != @out-groups6 return',
    'meta l4proto != udp return',
    'ip6 saddr != @pods6 goto out-drop-loop',
    'ip6 hoplimit < 2 goto out-drop-ttl',
    'update @out-meter6 { ip6 daddr limit rate over 1000/second burst 100 packets } goto out-drop-rate',
    'ip6 daddr != @out-meter6 goto out-drop-full',
    'limit name "out-total" goto out-drop-total',
    'update @out-pass6 { ip6 daddr }',
    'dup to "eth1"',
  ]);
  assert.equal(chain('out')[0], 'meta protocol ip6 goto out6');
  assert.equal(chain('lan-snat')[1], 'meta protocol ip6 goto lan-snat6');
  assert.deepEqual(chain('lan-snat6'), ['ip6 daddr != @out-groups6 return', 'ip6 saddr != @pods6 return', 'ether saddr set aa:bb:cc:00:00:01 ip6 saddr set fd00:250::1']);
  assert.deepEqual(chain('in-drop-rate'), ['update @in-rate { ip daddr }', 'update @in-rate6 { ip6 daddr }', 'counter name "in-drop-rate" drop']);
  for (const [name, rules] of expectedChains(dual({ minTtl: 2 }))) assert.equal(chain(name).length - (chain(name)[0]?.startsWith('type filter') ? 1 : 0), rules, `rules of ${name}`);
  // Without IPv6 groups nothing of this is rendered: the IPv4 table is what it was.
  assert.doesNotMatch(renderGateway(plane()), /ip6|6 \{|lan-in6|out6/);
  assert.throws(() => renderGateway(dual({ lanIp6: undefined })), /no global IPv6 address/);
  const inOnly6 = dual({ groups: parseGatewayGroups(['ff05::1:0/112=in']) });
  assert.deepEqual([...expectedChains(inOnly6).keys()], ['lan-in', 'lan-in6', 'in-drop-rate', 'in-drop-ttl', 'in-drop-loop', 'in-drop-total', 'in-drop-full']);
});

test('read-back of a live dual-stack table: IPv6 chains and per-group counters of both families', () => {
  const back = parseGateway(fixture('iproute2/nft-gateway-table6.json'));
  // Rendered from dual({ device: 'kmcb0', lan: 'kmcb1', minTtl: 2 }); two IPv6 datagrams passed, one had hop limit 1.
  const live = dual({ device: 'kmcb0', lan: 'kmcb1', delivery: 'kmcdr100', minTtl: 2 });
  assert.equal(gatewayMismatch(live, back), undefined);
  assert.deepEqual(back.counters.get('in-pass6')?.get('ff05::1:3'), { packets: 2, bytes: 2 * 70 });
  assert.equal(back.counters.get('in-ttl6')?.get('ff05::1:3')?.packets, 1);
  assert.equal(back.drops.get('in-drop-ttl')?.packets, 1);
  assert.equal(gatewayMismatch(plane({ device: 'kmcb0', lan: 'kmcb1', delivery: 'kmcdr100', minTtl: 2 }), back), 'unexpected chain lan-in6');
});

test('an IPv6 underlay: no IPv4 address, IPv6 loop guards, and frames the VXLAN device cannot carry counted as overlong', () => {
  const p = plane({
    lanIp: '',
    lanIp6: 'fd00:250::1',
    pods: [],
    pods6: ['fd00:10:244:1::11'],
    otherGatewayIps: ['fd00:250::2'],
    groups: parseGatewayGroups(['ff05::1:0/112=in', 'ff05::2:2=out']),
    carried: 1430,
  });
  const s = renderGateway(p);
  assert.match(s, /set gw-addrs \{ type ipv4_addr; \}/, 'no IPv4 address to guard');
  assert.match(s, /set gw-addrs6 \{ type ipv6_addr; elements = \{ fd00:250::1, fd00:250::2 \}; \}/, "the other gateway's IPv6 address guards the loop too");
  assert.match(s, /ip6 saddr @pods6 goto in-drop-loop\n\s+ip6 length > 1390 goto in-drop-overlong\n/, 'the payload length: 1430 less the 40-byte header');
  assert.match(s, /ip length > 1430 goto in-drop-overlong/);
  assert.match(s, /counter in-drop-overlong \{ \}/);
  assert.doesNotMatch(s, /out-drop-overlong/, 'outbound copies leave on the LAN, not the underlay');
  const snat = s.slice(s.indexOf('chain lan-snat {'), s.indexOf('}', s.indexOf('chain lan-snat {')) + 1);
  assert.deepEqual(
    snat.split('\n').map((l) => l.trim()),
    ['chain lan-snat {', 'type filter hook egress device "eth1" priority -500; policy accept;', 'meta protocol ip6 goto lan-snat6', '}'],
    'no IPv4 rewrite without an IPv4 address',
  );
  const want = expectedChains(p);
  assert.equal(want.get('lan-snat'), 1);
  assert.equal(want.get('in-drop-overlong'), 1);
  assert.equal(want.has('out-drop-overlong'), false);
  for (const [name, rules] of want) {
    const body = s.slice(s.indexOf(`chain ${name} {`));
    const lines = body.slice(0, body.indexOf('\n  }')).split('\n').slice(1);
    assert.equal(lines.filter((l) => !l.includes('type filter hook')).length, rules, name);
  }
  assert.equal(expectedChains(plane()).has('in-drop-overlong'), false, 'an IPv4 underlay fragments: no overlong drop');
  assert.throws(() => renderGateway({ ...p, groups: parseGatewayGroups(['ff05::1:0/112=in', '239.2.2.2=out']) }), /eth1 has no IPv4 address to send the IPv4 groups from/);
});
