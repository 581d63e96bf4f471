import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/errors.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { healNode } from '../../../src/lab/lab.js';
import {
  CALICO_GATEWAY6,
  buildSpec,
  nodeCommands,
  planLab,
  planPod,
  podAddresses,
  podCommands,
  podIp6,
  podIp6Of,
  routerCommands,
} from '../../../src/lab/plan.js';

const spec = buildSpec({ id: 't6', nodes: ['calico', 'bridge'], podsPerNode: 2, ipv6: true });
const line = (c: { argv: readonly string[]; netns?: string }): string => `${c.netns ?? '(root)'}: ${c.argv.join(' ')}`;

test('ipv6 is off by default and kept only when asked for', () => {
  assert.equal('ipv6' in buildSpec(), false);
  assert.equal('ipv6' in buildSpec({ ipv6: false }), false);
  assert.equal(spec.ipv6, true);
  const v4 = planLab(buildSpec({ id: 't6' }));
  assert.equal(
    v4.pods.some((p) => 'ip6' in p),
    false,
  );
  assert.equal(
    v4.nodes.some((n) => 'podCidr6' in n || 'underlayIp6' in n),
    false,
  );
});

test('dual-stack plan: every pod has the IPv6 twin of its IPv4 address, every node its /64', () => {
  const lab = planLab(spec);
  assert.deepEqual(
    lab.nodes.map((n) => [n.index, n.underlayIp6, n.podCidr6]),
    [
      [1, 'fd00:172:31:1::2', 'fd00:10:244:1::/64'],
      [2, 'fd00:172:31:2::2', 'fd00:10:244:2::/64'],
    ],
  );
  assert.deepEqual(
    lab.pods.map((p) => [p.name, p.ip, p.ip6]),
    [
      ['n1p1', '10.244.1.11', 'fd00:10:244:1::11'],
      ['n1p2', '10.244.1.12', 'fd00:10:244:1::12'],
      ['n2p1', '10.244.2.11', 'fd00:10:244:2::11'],
      ['n2p2', '10.244.2.12', 'fd00:10:244:2::12'],
    ],
  );
  assert.equal(podIp6(200, 240), 'fd00:10:244:200::250');
  assert.deepEqual(podAddresses(lab.pods[0]!), ['10.244.1.11', 'fd00:10:244:1::11']);
  assert.deepEqual(podAddresses({ ip: '10.244.1.11' }), ['10.244.1.11']);
  assert.throws(() => podIp6Of('192.168.1.1'), ConfigError);
});

test('a pod re-created with a removed pod\'s IP takes that IP\'s IPv6 twin too', () => {
  assert.deepEqual(planPod(spec, 1, 3, '10.244.1.11'), {
    name: 'n1p3',
    netns: 'kmct6-n1p3',
    node: 1,
    ip: '10.244.1.11',
    ip6: 'fd00:10:244:1::11',
    style: 'calico',
  });
  assert.ok(podCommands(spec, 1, 3, '10.244.1.11').map(line).includes('kmct6-n1p3: ip -6 addr add fd00:10:244:1::11/128 dev eth0'));
});

test('router: DAD off before any link, IPv6 unicast forwarding on', () => {
  assert.deepEqual(routerCommands(spec).map(line), [
    '(root): ip netns add kmct6-r',
    'kmct6-r: ip link set lo up',
    'kmct6-r: ip addr add 10.96.0.10/32 dev lo',
    'kmct6-r: sysctl -q -w net.ipv4.ip_forward=1',
    'kmct6-r: sysctl -q -w net.ipv6.conf.all.accept_dad=0',
    'kmct6-r: sysctl -q -w net.ipv6.conf.default.accept_dad=0',
    'kmct6-r: sysctl -q -w net.ipv6.conf.all.forwarding=1',
  ]);
});

test('bridge node: IPv6 uplink addresses, pod /64 routed by the router, gateway on the bridge', () => {
  assert.deepEqual(nodeCommands(spec, 2).map(line), [
    '(root): ip netns add kmct6-n2',
    'kmct6-n2: ip link set lo up',
    'kmct6-n2: sysctl -q -w net.ipv4.ip_forward=1',
    'kmct6-n2: sysctl -q -w net.ipv6.conf.all.accept_dad=0',
    'kmct6-n2: sysctl -q -w net.ipv6.conf.default.accept_dad=0',
    'kmct6-n2: sysctl -q -w net.ipv6.conf.all.forwarding=1',
    'kmct6-r: ip link add kmcn2 type veth peer name kmcup netns kmct6-n2',
    'kmct6-r: ip addr add 172.31.2.1/24 dev kmcn2',
    'kmct6-r: ip link set kmcn2 mtu 1500 up',
    'kmct6-n2: ip addr add 172.31.2.2/24 dev kmcup',
    'kmct6-n2: ip link set kmcup mtu 1500 up',
    'kmct6-n2: ip route add default via 172.31.2.1',
    'kmct6-r: ip route add 10.244.2.0/24 via 172.31.2.2',
    'kmct6-r: ip -6 addr add fd00:172:31:2::1/64 dev kmcn2',
    'kmct6-n2: ip -6 addr add fd00:172:31:2::2/64 dev kmcup',
    'kmct6-n2: ip -6 route add default via fd00:172:31:2::1',
    'kmct6-r: ip -6 route add fd00:10:244:2::/64 via fd00:172:31:2::2',
    'kmct6-n2: ip link add kmcbr type bridge',
    'kmct6-n2: ip addr add 10.244.2.1/24 dev kmcbr',
    'kmct6-n2: ip -6 addr add fd00:10:244:2::1/64 dev kmcbr',
    'kmct6-n2: ip link set kmcbr mtu 1500 up',
  ]);
});

test('calico pod: host veth MAC ee:ee:ee:ee:ee:ee (link-local gateway) set before it is up, /128, host route', () => {
  assert.equal(CALICO_GATEWAY6, 'fe80::ecee:eeff:feee:eeee');
  assert.deepEqual(podCommands(spec, 1, 2).map(line), [
    '(root): ip netns add kmct6-n1p2',
    'kmct6-n1p2: ip link set lo up',
    'kmct6-n1p2: sysctl -q -w net.ipv6.conf.all.accept_dad=0',
    'kmct6-n1p2: sysctl -q -w net.ipv6.conf.default.accept_dad=0',
    'kmct6-n1: ip link add kmcv2 type veth peer name eth0 netns kmct6-n1p2',
    'kmct6-n1: ip link set kmcv2 address ee:ee:ee:ee:ee:ee',
    'kmct6-n1: sysctl -q -w net.ipv6.conf.kmcv2.proxy_ndp=1',
    'kmct6-n1: sysctl -q -w net.ipv4.conf.kmcv2.proxy_arp=1',
    'kmct6-n1: sysctl -q -w net.ipv4.neigh.kmcv2.proxy_delay=0',
    'kmct6-n1: ip link set kmcv2 mtu 1500 up',
    'kmct6-n1: ip route add 10.244.1.12/32 dev kmcv2',
    'kmct6-n1p2: ip addr add 10.244.1.12/32 dev eth0',
    'kmct6-n1p2: ip link set eth0 mtu 1500 up',
    'kmct6-n1p2: ip route add 169.254.1.1 dev eth0 scope link',
    'kmct6-n1p2: ip route add default via 169.254.1.1 dev eth0',
    'kmct6-n1: ip -6 route add fd00:10:244:1::12/128 dev kmcv2',
    'kmct6-n1p2: ip -6 addr add fd00:10:244:1::12/128 dev eth0',
    'kmct6-n1p2: ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0',
  ]);
});

test('bridge pod: /64 on eth0, default via the bridge address', () => {
  assert.deepEqual(podCommands(spec, 2, 1).map(line), [
    '(root): ip netns add kmct6-n2p1',
    'kmct6-n2p1: ip link set lo up',
    'kmct6-n2p1: sysctl -q -w net.ipv6.conf.all.accept_dad=0',
    'kmct6-n2p1: sysctl -q -w net.ipv6.conf.default.accept_dad=0',
    'kmct6-n2: ip link add kmcv1 type veth peer name eth0 netns kmct6-n2p1',
    'kmct6-n2: ip link set kmcv1 master kmcbr mtu 1500 up',
    'kmct6-n2p1: ip addr add 10.244.2.11/24 dev eth0',
    'kmct6-n2p1: ip link set eth0 mtu 1500 up',
    'kmct6-n2p1: ip route add default via 10.244.2.1 dev eth0',
    'kmct6-n2p1: ip -6 addr add fd00:10:244:2::11/64 dev eth0',
    'kmct6-n2p1: ip -6 route add default via fd00:10:244:2::1 dev eth0',
  ]);
});

test('an IPv4-only lab runs no IPv6 step at all', () => {
  const v4 = buildSpec({ id: 't6', nodes: ['calico', 'bridge'] });
  const all = [...routerCommands(v4), ...nodeCommands(v4, 1), ...nodeCommands(v4, 2), ...podCommands(v4, 1, 1), ...podCommands(v4, 2, 1)].map(line);
  assert.deepEqual(
    all.filter((l) => /ipv6|-6|fd00|fe80|ee:ee/.test(l)),
    [],
  );
});

test('healNode in a dual-stack lab restores the uplink\'s IPv6 address and the pod /64 route', async () => {
  const runner = new FakeRunner();
  await healNode(planLab(spec), 2, runner);
  assert.deepEqual(
    runner.calls.map((c) => `${c.netns ?? ''}: ${c.argv.join(' ')}`),
    [
      'kmct6-r: ip link set kmcn2 up',
      'kmct6-r: ip route replace 10.244.2.0/24 via 172.31.2.2',
      'kmct6-r: ip -6 addr replace fd00:172:31:2::1/64 dev kmcn2',
      'kmct6-r: ip -6 route replace fd00:10:244:2::/64 via fd00:172:31:2::2',
    ],
  );
});
