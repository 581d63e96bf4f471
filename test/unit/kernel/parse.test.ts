import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFdb, parseIpv4Addrs, parseIpv6Addrs, parseIpv4Maddrs, parseIpVersion, parseLink, parseLinkStats, parseMdb, parseRoutes } from '../../../src/kernel/parse.js';
import { fixture } from '../fixtures.js';

test('parseLink reads the vxlan details iproute2 prints', () => {
  const l = parseLink(fixture('iproute2/link.json'));
  assert.ok(l);
  assert.equal(l.name, 'vx0');
  assert.equal(l.kind, 'vxlan');
  assert.equal(l.vni, 4242);
  assert.equal(l.port, 7471);
  assert.equal(l.local, '10.9.0.2');
  assert.equal(l.underlay, 'eth0');
  assert.equal(l.learning, false);
  assert.equal(l.mtu, 1450);
  assert.equal(l.up, true);
  assert.equal(l.addrGenMode, 'none');
  assert.equal(parseLink(''), undefined);
  assert.equal(parseLink('[]'), undefined);
});

test("parseIpv6Addrs: a dual-stack interface's global IPv6 addresses, not its link-local one", () => {
  assert.deepEqual(parseIpv6Addrs(fixture('iproute2/addr-lan-dual.json')), ['fd00:250::1/64']);
  assert.deepEqual(parseIpv6Addrs(fixture('iproute2/addr.json')), []);
});

test('parseIpv4Addrs keeps IPv4 with prefix length', () => {
  assert.deepEqual(parseIpv4Addrs(fixture('iproute2/addr.json')), ['10.9.0.2/32']);
  assert.deepEqual(parseIpv4Addrs(fixture('iproute2/addr-eth0.json')), ['10.9.0.2/24']);
});

test('parseFdb and parseMdb read flood and group entries', () => {
  assert.deepEqual(parseFdb(fixture('iproute2/fdb.json')), [
    { mac: '00:00:00:00:00:00', dst: '10.9.0.3' },
    { mac: '00:00:00:00:00:00', dst: '10.9.0.4' },
  ]);
  assert.deepEqual(parseMdb(fixture('iproute2/mdb.json')), [
    { grp: '0.0.0.0', dst: '192.0.2.1' },
    { grp: '239.1.1.1', dst: '10.9.0.3' },
  ]);
});

test('parseRoutes fills defaults iproute2 omits (type unicast, table main)', () => {
  const routes = parseRoutes(fixture('iproute2/routes.json'));
  const mc = routes.find((r) => r.dst === '224.0.0.0/4');
  assert.deepEqual(mc, {
    type: 'unicast',
    dst: '224.0.0.0/4',
    dev: 'vx0',
    gateway: undefined,
    table: 'main',
    scope: 'link',
    prefsrc: undefined,
    protocol: undefined,
  });
  assert.ok(routes.some((r) => r.type === 'blackhole' && r.dst === '192.0.2.1'));
  assert.ok(routes.some((r) => r.type === 'local' && r.table === 'local' && r.dev === 'vx0' && r.protocol === 'kernel'));
  const [def] = parseRoutes(fixture('iproute2/default.json'));
  assert.equal(def?.dev, 'eth0');
  assert.equal(def?.gateway, '10.9.0.1');
});

test('parseIpv4Maddrs lists joined IPv4 groups only', () => {
  assert.deepEqual(parseIpv4Maddrs(fixture('iproute2/maddr-joined.json')).sort(), ['224.0.0.1', '224.0.0.251', '239.1.1.7']);
});

test('parseLinkStats reads tx carrier errors', () => {
  assert.equal(parseLinkStats(fixture('iproute2/stats.json'))?.txCarrierErrors, 0);
  assert.equal(parseLinkStats('[{"stats64":{"tx":{"carrier_errors":7}}}]')?.txCarrierErrors, 7);
});

test('parseIpVersion', () => {
  assert.deepEqual(parseIpVersion('ip utility, iproute2-6.15.0, libbpf 1.1.2'), [6, 15]);
  assert.deepEqual(parseIpVersion('ip utility, iproute2-6.1.0, libbpf 1.1.2'), [6, 1]);
  assert.equal(parseIpVersion('busybox'), undefined);
});

test('an IPv6 underlay: a VXLAN device prints its local address as local6; global IPv6 addresses without the link-local one', () => {
  const link = parseLink(fixture('iproute2/link-vxlan6.json'));
  assert.deepEqual([link?.kind, link?.vni, link?.port, link?.local, link?.underlay, link?.learning], ['vxlan', 5, 7472, 'fd00:172:31:1::2', 'kmcup', false]);
  assert.deepEqual(parseIpv6Addrs(fixture('iproute2/addr-ipv6-only.json')), ['fd00:172:31:1::2/64']);
  assert.deepEqual(parseIpv4Addrs(fixture('iproute2/addr-ipv6-only.json')), []);
});
