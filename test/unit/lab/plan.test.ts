import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, NotFoundError } from '../../../src/errors.js';
import {
  IFNAME_MAX,
  buildSpec,
  findPodIn,
  labIdOfNetns,
  labNetnsPrefix,
  nextPodIndex,
  masqueradeScript,
  mtuOf,
  nodeCommands,
  parseNodes,
  parsePodShortName,
  planLab,
  planPod,
  isPodIpOfNode,
  podCommands,
  podHostLink,
  podResolvConf,
  routerCommands,
  routerLink,
} from '../../../src/lab/plan.js';

const spec = buildSpec({ id: 't1', nodes: ['calico', 'bridge'], podsPerNode: 2 });
const line = (c: { argv: readonly string[]; netns?: string }): string => `${c.netns ?? '(root)'}: ${c.argv.join(' ')}`;

test('buildSpec fills the defaults', () => {
  const s = buildSpec();
  assert.deepEqual(s, {
    id: 'lab',
    nodes: ['calico', 'bridge', 'calico'],
    podsPerNode: 2,
    mtu: 1500,
    service: 'kmcast-peers.default.svc.cluster.local',
  });
});

test('buildSpec names the flag of a bad value', () => {
  assert.throws(() => buildSpec({ podsPerNode: 0 }), (e: unknown) => e instanceof ConfigError && /--pods 0/.test(e.message));
  assert.throws(() => buildSpec({ mtu: 100 }), (e: unknown) => e instanceof ConfigError && /--mtu 100: must be an integer from 1280 to 9000/.test(e.message));
  assert.throws(() => buildSpec({ id: 'a-b' }), (e: unknown) => e instanceof ConfigError && /invalid lab id "a-b"/.test(e.message));
  assert.throws(() => buildSpec({ service: 'bad name' }), (e: unknown) => e instanceof ConfigError && /--service/.test(e.message));
  assert.throws(() => buildSpec({ nodes: [] }), ConfigError);
  assert.equal(buildSpec({ service: 'App.NS.svc.cluster.local.' }).service, 'app.ns.svc.cluster.local');
});

test('parseNodes takes a count (alternating styles) or a style list', () => {
  assert.deepEqual(parseNodes('3'), ['calico', 'bridge', 'calico']);
  assert.deepEqual(parseNodes('1'), ['calico']);
  assert.deepEqual(parseNodes('bridge, calico'), ['bridge', 'calico']);
  assert.throws(() => parseNodes('0'), /1 to 200 nodes/);
  assert.throws(() => parseNodes('calico,flannel'), /unknown node style "flannel"/);
});

test('planLab: names and addresses follow the plan', () => {
  const lab = planLab(spec);
  assert.equal(lab.router, 'kmct1-r');
  assert.equal(lab.stateDir, '/run/kmcast/labs/t1');
  assert.deepEqual(lab.dns, { ip: '10.96.0.10', port: 53 });
  assert.deepEqual(lab.nodes, [
    { index: 1, netns: 'kmct1-n1', style: 'calico', underlayIp: '172.31.1.2', podCidr: '10.244.1.0/24' },
    { index: 2, netns: 'kmct1-n2', style: 'bridge', underlayIp: '172.31.2.2', podCidr: '10.244.2.0/24' },
  ]);
  assert.deepEqual(
    lab.pods.map((p) => [p.name, p.netns, p.node, p.ip, p.style]),
    [
      ['n1p1', 'kmct1-n1p1', 1, '10.244.1.11', 'calico'],
      ['n1p2', 'kmct1-n1p2', 1, '10.244.1.12', 'calico'],
      ['n2p1', 'kmct1-n2p1', 2, '10.244.2.11', 'bridge'],
      ['n2p2', 'kmct1-n2p2', 2, '10.244.2.12', 'bridge'],
    ],
  );
});

test('every name starts with kmc and interface names fit IFNAMSIZ', () => {
  const big = planLab(buildSpec({ id: 'abcdefghijkl', nodes: parseNodes('200'), podsPerNode: 240 }));
  for (const n of [big.router, ...big.nodes.map((x) => x.netns), ...big.pods.map((p) => p.netns)]) assert.ok(n.startsWith('kmc'), n);
  for (const ifname of [routerLink(200), podHostLink(240), 'kmcup', 'kmcbr']) {
    assert.ok(ifname.startsWith('kmc'));
    assert.ok(ifname.length <= IFNAME_MAX, ifname);
  }
  assert.equal(big.pods.at(-1)?.ip, '10.244.200.250');
});

test('labIdOfNetns recognises only lab namespaces, and prefixes never collide', () => {
  assert.equal(labIdOfNetns('kmct1-r'), 't1');
  assert.equal(labIdOfNetns('kmct12-n3p4'), 't12');
  assert.equal(labIdOfNetns('kmct1-n2'), 't1');
  assert.equal(labIdOfNetns('kmct1-lan'), 't1');
  assert.equal(labIdOfNetns('kmct1-h12'), 't1');
  assert.equal(labIdOfNetns('kmct1-lanx'), undefined);
  assert.equal(labIdOfNetns('kmct1-h'), undefined);
  assert.equal(labIdOfNetns('kmcfix'), undefined);
  assert.equal(labIdOfNetns('other-n1'), undefined);
  assert.equal('kmct12-n1'.startsWith(labNetnsPrefix('t1')), false);
  assert.deepEqual(parsePodShortName('n12p3'), { node: 12, k: 3 });
  assert.equal(parsePodShortName('n1'), undefined);
});

test('router: forwarding on, DNS address on lo', () => {
  assert.deepEqual(routerCommands(spec).map(line), [
    '(root): ip netns add kmct1-r',
    'kmct1-r: ip link set lo up',
    'kmct1-r: ip addr add 10.96.0.10/32 dev lo',
    'kmct1-r: sysctl -q -w net.ipv4.ip_forward=1',
  ]);
});

test('bridge node: uplink created inside the router namespace, node bridge with the gateway', () => {
  assert.deepEqual(nodeCommands(buildSpec({ id: 't1', nodes: ['calico', 'bridge'], mtu: 1400 }), 2).map(line), [
    '(root): ip netns add kmct1-n2',
    'kmct1-n2: ip link set lo up',
    'kmct1-n2: sysctl -q -w net.ipv4.ip_forward=1',
    'kmct1-r: ip link add kmcn2 type veth peer name kmcup netns kmct1-n2',
    'kmct1-r: ip addr add 172.31.2.1/24 dev kmcn2',
    'kmct1-r: ip link set kmcn2 mtu 1400 up',
    'kmct1-n2: ip addr add 172.31.2.2/24 dev kmcup',
    'kmct1-n2: ip link set kmcup mtu 1400 up',
    'kmct1-n2: ip route add default via 172.31.2.1',
    'kmct1-r: ip route add 10.244.2.0/24 via 172.31.2.2',
    'kmct1-n2: ip link add kmcbr type bridge',
    'kmct1-n2: ip addr add 10.244.2.1/24 dev kmcbr',
    'kmct1-n2: ip link set kmcbr mtu 1400 up',
  ]);
  assert.equal(nodeCommands(spec, 1).some((c) => c.argv.includes('bridge')), false);
});

test('calico pod: /32 behind proxy-ARP, gateway 169.254.1.1', () => {
  assert.deepEqual(podCommands(spec, 1, 2).map(line), [
    '(root): ip netns add kmct1-n1p2',
    'kmct1-n1p2: ip link set lo up',
    'kmct1-n1: ip link add kmcv2 type veth peer name eth0 netns kmct1-n1p2',
    'kmct1-n1: sysctl -q -w net.ipv4.conf.kmcv2.proxy_arp=1',
    'kmct1-n1: sysctl -q -w net.ipv4.neigh.kmcv2.proxy_delay=0',
    'kmct1-n1: ip link set kmcv2 mtu 1500 up',
    'kmct1-n1: ip route add 10.244.1.12/32 dev kmcv2',
    'kmct1-n1p2: ip addr add 10.244.1.12/32 dev eth0',
    'kmct1-n1p2: ip link set eth0 mtu 1500 up',
    'kmct1-n1p2: ip route add 169.254.1.1 dev eth0 scope link',
    'kmct1-n1p2: ip route add default via 169.254.1.1 dev eth0',
  ]);
});

test('bridge pod: /24 on the node bridge, default via .1', () => {
  assert.deepEqual(podCommands(spec, 2, 1).map(line), [
    '(root): ip netns add kmct1-n2p1',
    'kmct1-n2p1: ip link set lo up',
    'kmct1-n2: ip link add kmcv1 type veth peer name eth0 netns kmct1-n2p1',
    'kmct1-n2: ip link set kmcv1 master kmcbr mtu 1500 up',
    'kmct1-n2p1: ip addr add 10.244.2.11/24 dev eth0',
    'kmct1-n2p1: ip link set eth0 mtu 1500 up',
    'kmct1-n2p1: ip route add default via 10.244.2.1 dev eth0',
  ]);
});

test('a pod re-created with a removed pod\'s IP: new name, namespace and veth, the old IP', () => {
  assert.deepEqual(planPod(spec, 1, 3, '10.244.1.11'), { name: 'n1p3', netns: 'kmct1-n1p3', node: 1, ip: '10.244.1.11', style: 'calico' });
  const cmds = podCommands(spec, 1, 3, '10.244.1.11').map(line);
  assert.ok(cmds.includes('kmct1-n1: ip link add kmcv3 type veth peer name eth0 netns kmct1-n1p3'));
  assert.ok(cmds.includes('kmct1-n1: ip route add 10.244.1.11/32 dev kmcv3'));
  assert.ok(cmds.includes('kmct1-n1p3: ip addr add 10.244.1.11/32 dev eth0'));
  assert.equal(cmds.some((c) => c.includes('10.244.1.13')), false, 'the planned IP of index 3 is not used');
  assert.ok(podCommands(spec, 2, 5, '10.244.2.11').map(line).includes('kmct1-n2p5: ip addr add 10.244.2.11/24 dev eth0'));
});

test('an IP outside the node\'s pod CIDR is refused with the range', () => {
  assert.throws(() => planPod(spec, 1, 3, '10.244.2.11'), (e: unknown) => e instanceof ConfigError && /10\.244\.1\.0\/24/.test(e.message));
  assert.throws(() => planPod(spec, 2, 3, '10.244.2.1'), ConfigError, 'the bridge gateway');
  assert.equal(isPodIpOfNode('10.244.1.11', 1), true);
  assert.equal(isPodIpOfNode('10.244.1.1', 1), false);
  assert.equal(isPodIpOfNode('10.244.1.251', 1), false);
  assert.equal(isPodIpOfNode('10.244.1.x', 1), false);
});

test('nothing but `ip netns add` runs in the root namespace', () => {
  const all = [...routerCommands(spec), ...nodeCommands(spec, 1), ...nodeCommands(spec, 2), ...podCommands(spec, 1, 1), ...podCommands(spec, 2, 1)];
  for (const c of all.filter((x) => x.netns === undefined)) assert.deepEqual(c.argv.slice(0, 3), ['ip', 'netns', 'add']);
});

test('nextPodIndex never reuses a removed pod name', () => {
  const pods = planLab(spec).pods.filter((p) => p.name !== 'n1p1');
  assert.equal(nextPodIndex(pods, 1), 3);
  assert.equal(nextPodIndex(pods.filter((p) => p.node !== 2), 2), 1);
});

test('findPodIn: short or namespace name; NotFoundError lists the pods', () => {
  const pods = planLab(spec).pods;
  assert.equal(findPodIn(pods, 'n2p1', 't1').ip, '10.244.2.11');
  assert.equal(findPodIn(pods, 'kmct1-n2p1', 't1').name, 'n2p1');
  assert.throws(
    () => findPodIn(pods, 'n9p9', 't1'),
    (e: unknown) => e instanceof NotFoundError && e.message === 'find pod "n9p9" in lab t1: no such pod; the pods are n1p1, n1p2, n2p1, n2p2',
  );
});

test('pod resolv.conf points at the lab DNS with Kubernetes search domains', () => {
  assert.equal(podResolvConf(spec), 'nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n');
  assert.match(podResolvConf(buildSpec({ service: 'app.prod.svc.cluster.local' })), /search prod\.svc\.cluster\.local /);
});

test('masquerade: the node\'s pod CIDR leaving by the uplink takes the node address, in one replace', () => {
  const s = masqueradeScript(buildSpec({ id: 't1', nodes: ['calico', 'bridge'] }), 2);
  assert.match(s, /^table ip kmclabmasq\ndelete table ip kmclabmasq\n/);
  assert.match(s, /type nat hook postrouting priority 100;/);
  assert.match(s, /ip saddr 10\.244\.2\.0\/24 oifname "kmcup" masquerade/);
});

test('nodeMtu: one node gets its own MTU for its uplink (both ends), bridge and pods; a bad one names --mtu', () => {
  const spec = buildSpec({ id: 't1', nodes: ['calico', 'bridge'], mtu: 1500, nodeMtu: { 2: 1450 } });
  assert.equal(mtuOf(spec, 1), 1500);
  assert.equal(mtuOf(spec, 2), 1450);
  const mtus = (cmds: ReturnType<typeof nodeCommands>): string[] => cmds.filter((c) => c.argv.includes('mtu')).map((c) => c.argv[c.argv.indexOf('mtu') + 1]!);
  assert.deepEqual(mtus(nodeCommands(spec, 2)), ['1450', '1450', '1450']);
  assert.deepEqual(mtus(nodeCommands(spec, 1)), ['1500', '1500']);
  assert.deepEqual(mtus(podCommands(spec, 2, 1)), ['1450', '1450']);
  assert.throws(() => buildSpec({ nodeMtu: { 1: 100 } }), /--mtu 100/);
});
