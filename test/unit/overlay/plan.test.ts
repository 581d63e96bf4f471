import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFdb, parseIpv4Addrs, parseIpv6Addrs, parseLink, parseMdb, parseRoutes } from '../../../src/kernel/parse.js';
import type { OverlaySpec } from '../../../src/overlay/desired.js';
import { desiredState } from '../../../src/overlay/desired.js';
import type { ActualState } from '../../../src/overlay/plan.js';
import { EMPTY_ACTUAL, isEmptyPlan, plan, underlayMtuRouteCommands, underlayRouteRemoval } from '../../../src/overlay/plan.js';
import { fixture } from '../fixtures.js';

const spec: OverlaySpec = {
  device: 'vx0',
  vni: 4242,
  port: 7471,
  underlay: 'eth0',
  underlayMtu: 1500,
  localIp: '10.9.0.2',
  unregistered: 'drop',
  replication: 'selective',
};

/** The recorded fixtures: vx0 with flood to .3 and .4, 239.1.1.1 → .3, catch-all to the blackhole. */
function recorded(): ActualState {
  return {
    link: parseLink(fixture('iproute2/link.json')),
    addrs: parseIpv4Addrs(fixture('iproute2/addr.json')),
    routes: parseRoutes(fixture('iproute2/routes.json')),
    fdb: parseFdb(fixture('iproute2/fdb.json')),
    mdb: parseMdb(fixture('iproute2/mdb.json')),
  };
}

test('from nothing: create, address, routes, flood and group entries, in kernel order', () => {
  const d = desiredState(spec, [
    { ip: '10.9.0.3', groups: ['239.1.1.1', '224.0.0.251'] },
    { ip: '10.9.0.2', groups: ['239.9.9.9'] }, // ourselves: never in our own lists
  ]);
  const p = plan(d, EMPTY_ACTUAL);
  assert.equal(p.recreate, false);
  assert.deepEqual(p.ip, [
    'link add vx0 type vxlan id 4242 dstport 7471 dev eth0 local 10.9.0.2 nolearning',
    'link set vx0 addrgenmode none',
    'addr add 10.9.0.2/32 dev vx0',
    'link set vx0 mtu 1450 up',
    'route replace 224.0.0.0/4 dev vx0 scope link',
    'route replace 255.255.255.255 dev vx0 scope link',
    'route replace blackhole 192.0.2.1/32',
  ]);
  assert.deepEqual(p.bridge, [
    'fdb append 00:00:00:00:00:00 dev vx0 dst 10.9.0.3',
    'mdb replace dev vx0 port vx0 grp 0.0.0.0 permanent dst 192.0.2.1',
    'mdb replace dev vx0 port vx0 grp 239.1.1.1 permanent dst 10.9.0.3',
  ]);
});

test('the recorded kernel state already matches its desired state: empty plan', () => {
  const d = desiredState(spec, [
    { ip: '10.9.0.3', groups: ['239.1.1.1'] },
    { ip: '10.9.0.4', groups: [] },
  ]);
  const p = plan(d, recorded());
  assert.ok(isEmptyPlan(p), JSON.stringify(p));
});

test('stale peers and groups are removed after the new ones are added', () => {
  const d = desiredState(spec, [{ ip: '10.9.0.5', groups: ['239.1.1.2'] }]);
  const p = plan(d, recorded());
  assert.deepEqual(p.ip, []);
  assert.deepEqual(p.bridge, [
    'fdb append 00:00:00:00:00:00 dev vx0 dst 10.9.0.5',
    'mdb replace dev vx0 port vx0 grp 239.1.1.2 permanent dst 10.9.0.5',
    'fdb del 00:00:00:00:00:00 dev vx0 dst 10.9.0.3',
    'fdb del 00:00:00:00:00:00 dev vx0 dst 10.9.0.4',
    'mdb del dev vx0 port vx0 grp 239.1.1.1 dst 10.9.0.3',
  ]);
});

test('a device with the wrong VNI or port is replaced and repopulated', () => {
  const a = recorded();
  const wrong: ActualState = { ...a, link: { ...a.link!, vni: 99 } };
  const p = plan(desiredState(spec, [{ ip: '10.9.0.3', groups: [] }]), wrong);
  assert.equal(p.recreate, true);
  assert.match(p.reason ?? '', /VNI 99 != 4242/);
  assert.equal(p.ip[0], 'link del vx0');
  assert.ok(p.ip.includes('route replace 224.0.0.0/4 dev vx0 scope link'));
  assert.ok(!p.ip.some((l) => l.includes('blackhole')), 'the blackhole route does not depend on the device');
  assert.ok(p.bridge.includes('fdb append 00:00:00:00:00:00 dev vx0 dst 10.9.0.3'));
  const port = plan(desiredState(spec, []), { ...a, link: { ...a.link!, port: 4789 } });
  assert.match(port.reason ?? '', /port 4789 != 7471/);
});

test('routes deleted by hand come back; an MTU change is applied in place', () => {
  const a = recorded();
  const noMc: ActualState = { ...a, routes: a.routes.filter((r) => r.dst !== '224.0.0.0/4'), link: { ...a.link!, mtu: 1400 } };
  const p = plan(
    desiredState(spec, [
      { ip: '10.9.0.3', groups: ['239.1.1.1'] },
      { ip: '10.9.0.4', groups: [] },
    ]),
    noMc,
  );
  assert.deepEqual(p.ip, ['link set vx0 mtu 1450 up', 'route replace 224.0.0.0/4 dev vx0 scope link']);
  assert.deepEqual(p.bridge, []);
});

test('flood replication: no MDB entries, no catch-all, and a leftover catch-all is removed', () => {
  const d = desiredState({ ...spec, replication: 'flood' }, [
    { ip: '10.9.0.3', groups: ['239.1.1.1'] },
    { ip: '10.9.0.4', groups: [] },
  ]);
  assert.deepEqual(d.mdb, []);
  const p = plan(d, recorded());
  assert.deepEqual(p.ip, ['route del blackhole 192.0.2.1']);
  assert.deepEqual(p.bridge, ['mdb del dev vx0 port vx0 grp 0.0.0.0 dst 192.0.2.1', 'mdb del dev vx0 port vx0 grp 239.1.1.1 dst 10.9.0.3']);
});

test('--unregistered flood keeps per-group entries but no catch-all', () => {
  const d = desiredState({ ...spec, unregistered: 'flood' }, [{ ip: '10.9.0.3', groups: ['239.1.1.1'] }]);
  assert.deepEqual(d.mdb, [{ grp: '239.1.1.1', dst: '10.9.0.3' }]);
  assert.ok(!d.routes.some((r) => r.type === 'blackhole'));
});

test('directed broadcast route in the local table with the pod IP as source', () => {
  const d = desiredState({ ...spec, broadcastAddress: '10.244.255.255' }, []);
  const p = plan(d, recorded());
  assert.ok(p.ip.includes('route replace broadcast 10.244.255.255 dev vx0 table local scope link src 10.9.0.2'));
});

test('link-local groups never get MDB entries (the kernel refuses them; they flood)', () => {
  const d = desiredState(spec, [{ ip: '10.9.0.3', groups: ['224.0.0.251', '224.0.0.1', '239.2.2.2', '10.0.0.1'] }]);
  assert.deepEqual(
    d.mdb.map((e) => e.grp),
    ['0.0.0.0', '239.2.2.2'],
  );
});

test('prune: false (an adopted device right after a restart) adds but never removes entries', () => {
  const d = desiredState(spec, [{ ip: '10.9.0.5', groups: ['239.1.1.2'] }]);
  const p = plan(d, recorded(), { prune: false });
  assert.deepEqual(p.bridge, ['fdb append 00:00:00:00:00:00 dev vx0 dst 10.9.0.5', 'mdb replace dev vx0 port vx0 grp 239.1.1.2 permanent dst 10.9.0.5']);
});

test('bare (node mode): the device gets no address and no 224/4 or broadcast route, only the blackhole; catch-alls of both families', () => {
  const bare: OverlaySpec = { ...spec, device: 'kmcvx100', vni: 100, port: 7472, underlay: 'kmcup', localIp: '172.31.1.2', broadcastAddress: '10.0.0.255', bare: true };
  const d = desiredState(bare, [{ ip: '172.31.2.2', groups: ['239.1.1.1'] }]);
  assert.deepEqual(d.addrs, []);
  assert.deepEqual(d.routes, [{ type: 'blackhole', dst: '192.0.2.1', table: 'main' }]);
  const p = plan(d, EMPTY_ACTUAL);
  assert.deepEqual(p.ip, [
    'link add kmcvx100 type vxlan id 100 dstport 7472 dev kmcup local 172.31.1.2 nolearning',
    'link set kmcvx100 addrgenmode none',
    'link set kmcvx100 mtu 1450 up',
    'route replace blackhole 192.0.2.1/32',
  ]);
  assert.deepEqual(p.bridge, [
    'fdb append 00:00:00:00:00:00 dev kmcvx100 dst 172.31.2.2',
    // Node mode carries every member's IPv6 multicast: an IPv6 group nobody joined goes nowhere.
    'mdb replace dev kmcvx100 port kmcvx100 grp :: permanent dst 192.0.2.1',
    'mdb replace dev kmcvx100 port kmcvx100 grp 0.0.0.0 permanent dst 192.0.2.1',
    'mdb replace dev kmcvx100 port kmcvx100 grp 239.1.1.1 permanent dst 172.31.2.2',
  ]);
  const flood = plan(desiredState({ ...bare, unregistered: 'flood' }, [{ ip: '172.31.2.2', groups: ['239.1.1.1'] }]), EMPTY_ACTUAL);
  assert.ok(!flood.bridge.some((l) => / grp (::|0\.0\.0\.0) /.test(l)), '--unregistered flood: no catch-all of either family');
});

/** A dual-stack pod's vx0, recorded: n1p1 with peers 10.244.{1.12,2.11,2.12,3.11,3.12}, ff05::1:3 and ff0e::db8:1 joined by 2.11 and 3.11. */
const DUAL: OverlaySpec = { ...spec, localIp: '10.244.1.11', localIp6: 'fd00:10:244:1::11', underlayMtu: 1500 };
function recordedDual(): ActualState {
  return {
    link: parseLink(fixture('iproute2/dual/link.json')),
    addrs: [...parseIpv4Addrs(fixture('iproute2/dual/addr.json')), ...parseIpv6Addrs(fixture('iproute2/dual/addr.json'))],
    routes: [...parseRoutes(fixture('iproute2/dual/routes.json')), ...parseRoutes(fixture('iproute2/dual/routes6.json'))],
    fdb: parseFdb(fixture('iproute2/dual/fdb.json')),
    mdb: parseMdb(fixture('iproute2/dual/mdb.json')),
  };
}
const dualPeers = (g: Record<string, string[]> = {}): Array<{ ip: string; groups: string[] }> =>
  ['10.244.1.12', '10.244.2.11', '10.244.2.12', '10.244.3.11', '10.244.3.12'].map((ip) => ({ ip, groups: g[ip] ?? [] }));
const JOINED = { '10.244.2.11': ['ff05::1:3', 'ff0e::db8:1', 'ff02::fb'], '10.244.3.11': ['ff0e:0:0:0:0:0:db8:1', 'ff05::1:3'] };

test('dual stack from nothing: the pod IPv6 on vx0 without DAD or prefix route, the IPv6 multicast route in the local table', () => {
  const p = plan(desiredState(DUAL, dualPeers(JOINED)), EMPTY_ACTUAL);
  assert.ok(p.ip.includes('addr add fd00:10:244:1::11/128 dev vx0 nodad noprefixroute'), p.ip.join('\n'));
  assert.ok(p.ip.includes('route replace multicast ff00::/8 dev vx0 table local metric 1'), p.ip.join('\n'));
  assert.ok(p.bridge.includes('mdb replace dev vx0 port vx0 grp ff05::1:3 permanent dst 10.244.2.11'));
  assert.ok(!p.bridge.some((l) => l.includes('ff02::fb')), 'link-local IPv6 groups flood: no MDB entry');
  // --unregistered drop: an IPv6 catch-all beside the IPv4 one (the kernel never applies it to ffX2::).
  assert.ok(p.bridge.includes('mdb replace dev vx0 port vx0 grp :: permanent dst 192.0.2.1'));
  assert.ok(p.bridge.includes('mdb replace dev vx0 port vx0 grp 0.0.0.0 permanent dst 192.0.2.1'));
  const flood = plan(desiredState({ ...DUAL, unregistered: 'flood' }, dualPeers(JOINED)), EMPTY_ACTUAL);
  assert.ok(!flood.bridge.some((l) => / grp (::|0\.0\.0\.0) /.test(l)), '--unregistered flood: no catch-all of either family');
  const v4only = plan(desiredState({ ...DUAL, localIp6: undefined }, dualPeers(JOINED)), EMPTY_ACTUAL);
  assert.ok(!v4only.bridge.some((l) => / grp :: /.test(l)), 'no pod IPv6: no IPv6 catch-all');
});

test('dual stack, recorded from the kernel: IPv6 MDB entries, address and route read back as planned: empty plan', () => {
  const d = desiredState(DUAL, dualPeers(JOINED));
  const actual = recordedDual();
  assert.deepEqual(
    actual.mdb.filter((e) => e.grp.includes(':')).map((e) => `${e.grp}>${e.dst}`),
    ['ff05::1:3>10.244.3.11', 'ff05::1:3>10.244.2.11', 'ff0e::db8:1>10.244.3.11', 'ff0e::db8:1>10.244.2.11', '::>192.0.2.1'],
  );
  assert.deepEqual(plan(d, actual), { recreate: false, ip: [], bridge: [] });
  // The kernel's own ff00::/8 routes (eth0's and vx0's, proto kernel) are never ours to touch.
  assert.ok(actual.routes.some((r) => r.dst === 'ff00::/8' && r.dev === 'vx0' && r.protocol === 'kernel'));
});

test('dual stack: a leave removes only its IPv6 entry; a deleted route or address comes back; the kernel route is never deleted', () => {
  const leave = plan(desiredState(DUAL, dualPeers({ ...JOINED, '10.244.3.11': ['ff05::1:3'] })), recordedDual());
  assert.deepEqual(leave, { recreate: false, ip: [], bridge: ['mdb del dev vx0 port vx0 grp ff0e::db8:1 dst 10.244.3.11'] });
  const a = recordedDual();
  const gone: ActualState = { ...a, addrs: a.addrs.filter((x) => !x.includes(':')), routes: a.routes.filter((r) => !(r.dst === 'ff00::/8' && r.metric === 1)) };
  assert.deepEqual(plan(desiredState(DUAL, dualPeers(JOINED)), gone).ip, [
    'addr add fd00:10:244:1::11/128 dev vx0 nodad noprefixroute',
    'route replace multicast ff00::/8 dev vx0 table local metric 1',
  ]);
  // IPv6 turned off (no pod IPv6 any more): our route and address go, by metric; the kernel's stay.
  const off = plan(desiredState({ ...DUAL, localIp6: undefined }, dualPeers(JOINED)), recordedDual());
  assert.deepEqual(off.ip, ['addr del fd00:10:244:1::11/128 dev vx0', 'route del multicast ff00::/8 dev vx0 table local metric 1']);
  assert.deepEqual(off.bridge, ['mdb del dev vx0 port vx0 grp :: dst 192.0.2.1'], 'and the IPv6 catch-all');
});

test('an IPv6 underlay: local6 read back, 70 bytes of overhead, the catch-all to the IPv6 discard prefix; converged, the plan is empty', () => {
  const v6: OverlaySpec = { ...spec, device: 'kmcvx5', vni: 5, port: 7472, underlay: 'kmcup', localIp: 'fd00:172:31:1::2', bare: true };
  const d = desiredState(v6, [{ ip: 'fd00:172:31:2::2', groups: ['ff05::1:3', '239.1.1.1'] }]);
  assert.equal(d.link.mtu, 1430);
  assert.deepEqual(d.routes, [{ type: 'blackhole', dst: '100::1', table: 'main' }]);
  const p = plan(d, EMPTY_ACTUAL);
  assert.deepEqual(p.ip, [
    'link add kmcvx5 type vxlan id 5 dstport 7472 dev kmcup local fd00:172:31:1::2 nolearning',
    'link set kmcvx5 addrgenmode none',
    'link set kmcvx5 mtu 1430 up',
    'route replace blackhole 100::1/128',
  ]);
  assert.deepEqual(p.bridge, [
    'fdb append 00:00:00:00:00:00 dev kmcvx5 dst fd00:172:31:2::2',
    'mdb replace dev kmcvx5 port kmcvx5 grp :: permanent dst 100::1',
    'mdb replace dev kmcvx5 port kmcvx5 grp 0.0.0.0 permanent dst 100::1',
    'mdb replace dev kmcvx5 port kmcvx5 grp 239.1.1.1 permanent dst fd00:172:31:2::2',
    'mdb replace dev kmcvx5 port kmcvx5 grp ff05::1:3 permanent dst fd00:172:31:2::2',
  ]);
  // The recorded device (as created, then brought up) and the kernel's IPv6 blackhole route (`dev lo`).
  const link = parseLink(fixture('iproute2/link-vxlan6.json'));
  assert.equal(link?.local, 'fd00:172:31:1::2');
  const actual: ActualState = {
    link: { ...link!, up: true, addrGenMode: 'none' },
    addrs: [],
    routes: parseRoutes(fixture('iproute2/routes-blackhole6.json')),
    fdb: d.fdb.map((dst) => ({ mac: '00:00:00:00:00:00', dst })),
    mdb: d.mdb,
  };
  assert.ok(isEmptyPlan(plan(d, actual)), JSON.stringify(plan(d, actual)));
});

test("an IPv6-only pod's vx0: VXLAN over the pod IPv6, its /128 once and no IPv4 address, IPv6 remotes and catch-alls to 100::1", () => {
  const only6: OverlaySpec = { ...spec, localIp: 'fd00:10:244:1::11', localIp6: 'fd00:10:244:1::11', underlayMtu: 1430, capturesUnderlay: true };
  const peers = [
    { ip: 'fd00:10:244:2::11', groups: ['ff05::1:3', 'ff02::fb'] },
    { ip: 'fd00:10:244:3::11', groups: ['ff02::fb'] },
  ];
  const d = desiredState(only6, peers);
  assert.deepEqual(d.addrs, ['fd00:10:244:1::11/128']);
  assert.equal(d.link.mtu, 1360, 'the pod MTU less VXLAN over IPv6');
  assert.deepEqual(d.fdb, ['fd00:10:244:2::11', 'fd00:10:244:3::11']);
  assert.deepEqual(
    d.mdb.map((e) => `${e.grp}>${e.dst}`),
    ['::>100::1', '0.0.0.0>100::1', 'ff05::1:3>fd00:10:244:2::11'],
  );
  assert.ok(!d.routes.some((r) => r.type === 'blackhole' && !r.dst.includes(':')), 'no IPv4 blackhole on an IPv6 underlay');
  const p = plan(d, EMPTY_ACTUAL);
  assert.ok(
    p.ip.some((l) => l.includes('local fd00:10:244:1::11')),
    p.ip.join('\n'),
  );
  assert.ok(!p.ip.some((l) => /addr add .*\/32/.test(l)), p.ip.join('\n'));
  // eth0's multicast sends are fragmented to vx0's MTU, so every captured fragment fits VXLAN over IPv6.
  assert.deepEqual(
    d.routes.filter((r) => r.dev === 'eth0'),
    [{ type: 'multicast', dst: 'ff00::/8', table: 'local', dev: 'eth0', metric: 2, mtu: 1360 }],
  );
  assert.ok(p.ip.includes('route replace multicast ff00::/8 dev eth0 table local metric 2 mtu 1360'), p.ip.join('\n'));
});

test("the IPv6-only pod's eth0 MTU route: read back as recorded, converged; a changed MTU is replaced; removed at teardown, never the kernel's", () => {
  const only6: OverlaySpec = { ...spec, localIp: 'fd00:10:244:1::11', localIp6: 'fd00:10:244:1::11', underlayMtu: 1430, capturesUnderlay: true };
  const d = desiredState(only6, []);
  const recorded = parseRoutes(fixture('iproute2/routes6-underlay-mtu.json'));
  const ours = recorded.find((r) => r.dev === 'eth0' && r.type === 'multicast' && r.metric === 2);
  assert.equal(ours?.mtu, 1360, JSON.stringify(recorded));
  // The device as desired, every route but the eth0 one already there: only the vx0 route is missing.
  const actual: ActualState = {
    link: {
      name: d.link.name,
      ifindex: 9,
      kind: 'vxlan',
      vni: d.link.vni,
      port: d.link.port,
      local: d.link.local,
      underlay: d.link.underlay,
      learning: false,
      mtu: d.link.mtu,
      up: true,
      mac: undefined,
      addrGenMode: 'none',
    },
    addrs: d.addrs,
    routes: [...recorded, ...d.routes.filter((r) => r.dev !== 'eth0').map((r) => ({ ...r, dev: r.dev, gateway: undefined, scope: undefined, prefsrc: undefined, protocol: undefined }))],
    fdb: [],
    mdb: d.mdb,
  };
  assert.deepEqual(plan(d, actual).ip, [], 'converged');
  const grown = desiredState({ ...only6, underlayMtu: 1500 }, []);
  assert.ok(plan(grown, { ...actual, link: { ...actual.link!, mtu: 1430 } }).ip.includes('route replace multicast ff00::/8 dev eth0 table local metric 2 mtu 1430'));
  assert.deepEqual(underlayRouteRemoval(recorded, 'eth0'), ['route del multicast ff00::/8 dev eth0 table local metric 2'], "ours only: never the kernel's metric 256");
  assert.deepEqual(underlayRouteRemoval(recorded, 'eth1'), []);
  // A dual-stack pod's underlay is IPv4, which fragments VXLAN: no such route. Nor with --capture
  // off: eth0's sends stay on eth0, and eth0 is left as it is.
  assert.ok(!desiredState({ ...only6, localIp: '10.244.1.11' }, []).routes.some((r) => r.dev === 'eth0'));
  assert.ok(!desiredState({ ...only6, capturesUnderlay: false }, []).routes.some((r) => r.dev === 'eth0'));
});

test('underlayMtuRouteCommands: the one rule both modes use to give an interface our multicast MTU route', () => {
  const recorded = parseRoutes(fixture('iproute2/routes6-underlay-mtu.json'));
  assert.deepEqual(underlayMtuRouteCommands(recorded, 'eth0', 1360), [], 'as recorded: nothing to do');
  assert.deepEqual(underlayMtuRouteCommands(recorded, 'eth0', 1430), ['route replace multicast ff00::/8 dev eth0 table local metric 2 mtu 1430']);
  const without = recorded.filter((r) => r.metric !== 2);
  assert.deepEqual(underlayMtuRouteCommands(without, 'eth0', 1360), ['route replace multicast ff00::/8 dev eth0 table local metric 2 mtu 1360']);
  assert.deepEqual(underlayMtuRouteCommands(without, 'eth0', undefined), [], "nothing of ours to remove; the kernel's route stays");
});
