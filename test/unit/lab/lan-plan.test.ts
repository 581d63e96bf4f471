import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/errors.js';
import { IFNAME_MAX, buildSpec } from '../../../src/lab/plan.js';
import {
  MAX_LAN_NODE,
  checkLanHosts,
  lanCommands,
  lanHostCommands,
  lanNodeCommands,
  lanSwitchCommands,
  parseLanMdb,
  parseLanNodes,
  planLan,
} from '../../../src/lab/lan-plan.js';

const spec = buildSpec({ id: 't1', nodes: ['calico', 'bridge', 'calico'], podsPerNode: 1, mtu: 1400 });
const line = (c: { argv: readonly string[]; netns?: string }): string => `${c.netns ?? '(root)'}: ${c.argv.join(' ')}`;

test('planLan: switch, hosts and node attachments follow the plan', () => {
  assert.deepEqual(planLan(spec, { nodes: [1, 3] }), {
    netns: 'kmct1-lan',
    bridge: 'kmclanbr',
    cidr: '192.168.250.0/24',
    switchIp: '192.168.250.254',
    hosts: [
      { name: 'h1', netns: 'kmct1-h1', ip: '192.168.250.11', ifname: 'eth0' },
      { name: 'h2', netns: 'kmct1-h2', ip: '192.168.250.12', ifname: 'eth0' },
    ],
    nodes: [
      { node: 1, netns: 'kmct1-n1', ifname: 'kmclan', ip: '192.168.250.1', port: 'kmcl1' },
      { node: 3, netns: 'kmct1-n3', ifname: 'kmclan', ip: '192.168.250.3', port: 'kmcl3' },
    ],
  });
  assert.equal(planLan(spec, { nodes: [2], hosts: 50 }).hosts.at(-1)?.ip, '192.168.250.60');
  assert.deepEqual(planLan(spec, { nodes: [2, 2] }).nodes.map((n) => n.node), [2]);
});

test('switch: a snooping bridge that is the IGMP querier, with a short query interval', () => {
  assert.deepEqual(lanSwitchCommands('t1', 1400).map(line), [
    '(root): ip netns add kmct1-lan',
    'kmct1-lan: ip link set lo up',
    'kmct1-lan: ip link add kmclanbr type bridge mcast_snooping 1 mcast_query_use_ifaddr 1 mcast_igmp_version 2 ' +
      'mcast_query_interval 200 mcast_query_response_interval 50 mcast_startup_query_interval 50 mcast_membership_interval 500',
    'kmct1-lan: ip addr add 192.168.250.254/24 dev kmclanbr',
    'kmct1-lan: ip link set kmclanbr mtu 1400 up',
    'kmct1-lan: ip link set kmclanbr type bridge mcast_querier 1',
  ]);
});

test('LAN host: eth0 on the switch, a multicast route and no default route', () => {
  const cmds = lanHostCommands('t1', 2, 1400);
  assert.deepEqual(cmds.map(line), [
    '(root): ip netns add kmct1-h2',
    'kmct1-h2: ip link set lo up',
    'kmct1-lan: ip link add kmch2 type veth peer name eth0 netns kmct1-h2',
    'kmct1-lan: ip link set kmch2 master kmclanbr mtu 1400 up',
    'kmct1-h2: ip addr add 192.168.250.12/24 dev eth0',
    'kmct1-h2: ip link set eth0 mtu 1400 up',
    'kmct1-h2: ip route add 224.0.0.0/4 dev eth0',
  ]);
  assert.equal(cmds.some((c) => c.argv.includes('default')), false);
});

test('node attachment: kmclan on a port that is never a multicast router port, no route change', () => {
  const cmds = lanNodeCommands('t1', 3, 1400);
  assert.deepEqual(cmds.map(line), [
    'kmct1-lan: ip link add kmcl3 type veth peer name kmclan netns kmct1-n3',
    'kmct1-lan: ip link set kmcl3 master kmclanbr mtu 1400 up',
    'kmct1-lan: ip link set kmcl3 type bridge_slave mcast_router 0 mcast_flood on bcast_flood on',
    'kmct1-n3: ip addr add 192.168.250.3/24 dev kmclan',
    'kmct1-n3: ip link set kmclan mtu 1400 up',
  ]);
  assert.equal(cmds.some((c) => c.argv.includes('route')), false);
});

test('the LAN is never routed: nothing touches the router, only `ip netns add` runs in the root namespace', () => {
  const all = lanCommands(spec, planLan(spec, { nodes: [1, 2, 3], hosts: 3 }));
  assert.equal(all.length, 6 + 3 * 7 + 3 * 5);
  assert.equal(all.some((c) => c.netns === 'kmct1-r'), false);
  for (const c of all.filter((x) => x.netns === undefined)) assert.deepEqual(c.argv.slice(0, 3), ['ip', 'netns', 'add']);
  assert.equal(all.some((c) => c.argv.includes('172.31.1.1') || c.argv.includes('ip_forward=1')), false);
});

test('LAN interface names fit IFNAMSIZ at the largest host and node numbers', () => {
  const big = buildSpec({ id: 'abcdefghijkl', nodes: Array.from({ length: 12 }, () => 'calico' as const), podsPerNode: 1 });
  const lan = planLan(big, { nodes: [MAX_LAN_NODE], hosts: 50 });
  const cmds = lanCommands(big, lan);
  // Every interface created (`link add NAME ... peer name PEER`) and the bridge.
  const names = cmds.filter((c) => c.argv[2] === 'add' && c.argv[1] === 'link').flatMap((c) => [c.argv[3] ?? '', c.argv[c.argv.indexOf('name') + 1] ?? '']);
  assert.ok(names.includes('kmch50') && names.includes('kmcl10') && names.includes('kmclanbr') && names.includes('kmclan'), names.join(' '));
  for (const n of names) assert.ok(Buffer.byteLength(n) <= IFNAME_MAX, `${n} is longer than ${IFNAME_MAX} bytes`);
});

test('--lan and --lan-hosts are validated with the flag named', () => {
  assert.deepEqual(parseLanNodes('1', 3), [1]);
  assert.deepEqual(parseLanNodes(' 2, 1 ,2', 3), [2, 1]);
  const bad = (re: RegExp) => (e: unknown) => e instanceof ConfigError && re.test(e.message);
  assert.throws(() => parseLanNodes('4', 3), bad(/invalid --lan 4: the LAN attaches to nodes 1 to 3/));
  assert.throws(() => parseLanNodes('0', 3), bad(/invalid --lan 0/));
  assert.throws(() => parseLanNodes('1,x', 3), bad(/invalid --lan "1,x": use a comma list of node indexes/));
  assert.throws(() => parseLanNodes('', 3), bad(/invalid --lan ""/));
  assert.throws(() => parseLanNodes('11', 20), bad(/only nodes 1 to 10 have a LAN address/));
  assert.throws(() => checkLanHosts(0), bad(/invalid --lan-hosts 0: a LAN has 1 to 50 hosts/));
  assert.throws(() => checkLanHosts(51), bad(/invalid --lan-hosts 51/));
  assert.equal(checkLanHosts(50), 50);
  assert.throws(() => planLan(spec, { nodes: [4] }), ConfigError);
  assert.throws(() => planLan(spec, { nodes: [1], hosts: 0 }), ConfigError);
});

test('parseLanMdb keeps IPv4 group memberships per port', () => {
  const json = JSON.stringify([
    {
      mdb: [
        { index: 2, dev: 'kmclanbr', port: 'kmch2', grp: '239.1.1.1', state: 'temp', flags: [] },
        { index: 2, dev: 'kmclanbr', port: 'kmcl1', grp: 'ff02::1:fff0:7620', state: 'temp', flags: [] },
        { index: 2, dev: 'kmclanbr', port: 'kmcl1', grp: '239.1.1.1', state: 'temp', flags: [] },
      ],
      router: {},
    },
  ]);
  assert.deepEqual(parseLanMdb(json), [
    { port: 'kmch2', group: '239.1.1.1' },
    { port: 'kmcl1', group: '239.1.1.1' },
  ]);
  assert.deepEqual(parseLanMdb(json, 6), [{ port: 'kmcl1', group: 'ff02::1:fff0:7620' }], 'MLD snooping: the IPv6 entries when asked for');
  assert.deepEqual(parseLanMdb(''), []);
  assert.deepEqual(parseLanMdb('not json'), []);
  assert.deepEqual(parseLanMdb('[{"mdb":[{"port":1,"grp":"239.1.1.1"}]}]'), []);
});

test('a dual-stack lab: the LAN gets fd00:250::/64 with the same last digits, DAD off, every address before the link is up', () => {
  const v6 = buildSpec({ id: 't1', nodes: ['calico', 'bridge'], podsPerNode: 1, mtu: 1400, ipv6: true });
  const lan = planLan(v6, { nodes: [2], hosts: 1 });
  assert.deepEqual([lan.cidr6, lan.switchIp6, lan.hosts[0]!.ip6, lan.nodes[0]!.ip6], ['fd00:250::/64', 'fd00:250::fe', 'fd00:250::11', 'fd00:250::2']);
  assert.equal(planLan(spec, { nodes: [1] }).hosts[0]!.ip6, undefined, 'an IPv4 lab has no IPv6 on its LAN');
  const all = lanCommands(v6, lan).map(line);
  for (const ns of ['kmct1-lan', 'kmct1-h1']) {
    assert.ok(all.includes(`${ns}: sysctl -q -w net.ipv6.conf.all.accept_dad=0`), ns);
    assert.ok(all.includes(`${ns}: sysctl -q -w net.ipv6.conf.default.accept_dad=0`), ns);
  }
  assert.ok(all.includes('kmct1-lan: ip -6 addr add fd00:250::fe/64 dev kmclanbr'));
  assert.ok(all.includes('kmct1-h1: ip -6 addr add fd00:250::11/64 dev eth0'));
  assert.ok(all.includes('kmct1-n2: ip -6 addr add fd00:250::2/64 dev kmclan'));
  assert.ok(all.indexOf('kmct1-lan: sysctl -q -w net.ipv6.conf.default.accept_dad=0') < all.findIndex((l) => l.includes('ip link add kmclanbr')), 'DAD off before the bridge exists');
  assert.ok(all.indexOf('kmct1-h1: sysctl -q -w net.ipv6.conf.default.accept_dad=0') < all.findIndex((l) => l.includes('peer name eth0 netns kmct1-h1')), "DAD off before the host's eth0 exists");
  assert.equal(lanCommands(spec, planLan(spec, { nodes: [1] })).filter((c) => c.argv.includes('-6') || c.argv.includes('sysctl')).length, 0, 'an IPv4 lab: no IPv6 step');
});

test('an IPv6-only lab: the LAN is fd00:250::/64 alone, no IPv4 address or route anywhere on it', () => {
  const v6only = buildSpec({ id: 't1', nodes: ['calico', 'bridge'], podsPerNode: 1, mtu: 1400, ipv6Only: true });
  const lan = planLan(v6only, { nodes: [1], hosts: 1 });
  assert.deepEqual([lan.cidr, lan.switchIp, lan.cidr6, lan.switchIp6], ['fd00:250::/64', 'fd00:250::fe', 'fd00:250::/64', 'fd00:250::fe']);
  assert.deepEqual([lan.hosts[0]!.ip, lan.hosts[0]!.ip6, lan.nodes[0]!.ip, lan.nodes[0]!.ip6], ['fd00:250::11', 'fd00:250::11', 'fd00:250::1', 'fd00:250::1'], "a host's and a node's address is its IPv6 one");
  const all = lanCommands(v6only, lan).map(line);
  assert.deepEqual(
    all.filter((l) => /192\.168|224\.0\.0\.0/.test(l)),
    [],
    'no IPv4 address, no IPv4 multicast route',
  );
  for (const want of ['kmct1-lan: ip -6 addr add fd00:250::fe/64 dev kmclanbr', 'kmct1-h1: ip -6 addr add fd00:250::11/64 dev eth0', 'kmct1-n1: ip -6 addr add fd00:250::1/64 dev kmclan', 'kmct1-h1: sysctl -q -w net.ipv6.conf.all.accept_dad=0']) {
    assert.ok(all.includes(want), want);
  }
  assert.ok(
    lanNodeCommands('t1', 2, 1400, 'only')
      .map(line)
      .includes('kmct1-n2: ip -6 addr add fd00:250::2/64 dev kmclan'),
    'a node attached later gets the IPv6 address too',
  );
});
