import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/errors.js';
import { buildSpec, hostPort, masqueradeScript, nodeCommands, planLab, planPod, podAddresses, podCommands, podResolvConf, routerCommands } from '../../../src/lab/plan.js';

const spec = buildSpec({ id: 'o6', nodes: ['calico', 'bridge'], podsPerNode: 1, ipv6Only: true, podMtu: { 1: 1430 } });
const line = (c: { argv: readonly string[]; netns?: string }): string => `${c.netns ?? '(root)'}: ${c.argv.join(' ')}`;
const lines = (cmds: readonly { argv: readonly string[]; netns?: string }[]): string[] => cmds.map(line);

test('IPv6 only: every address field holds the IPv6 address, the DNS listens on IPv6', () => {
  const lab = planLab(spec);
  assert.deepEqual(
    lab.nodes.map((n) => [n.underlayIp, n.underlayIp6, n.podCidr, n.podCidr6]),
    [
      ['fd00:172:31:1::2', 'fd00:172:31:1::2', 'fd00:10:244:1::/64', 'fd00:10:244:1::/64'],
      ['fd00:172:31:2::2', 'fd00:172:31:2::2', 'fd00:10:244:2::/64', 'fd00:10:244:2::/64'],
    ],
  );
  assert.deepEqual(
    lab.pods.map((p) => [p.name, p.ip, p.ip6]),
    [
      ['n1p1', 'fd00:10:244:1::11', 'fd00:10:244:1::11'],
      ['n2p1', 'fd00:10:244:2::11', 'fd00:10:244:2::11'],
    ],
  );
  assert.deepEqual(podAddresses(lab.pods[0]!), ['fd00:10:244:1::11'], 'one address: the Service answers AAAA only');
  assert.deepEqual(lab.dns, { ip: 'fd00:10:96::10', port: 53 });
  assert.equal(hostPort(lab.dns.ip, lab.dns.port), '[fd00:10:96::10]:53');
  assert.equal(hostPort('10.96.0.10', 53), '10.96.0.10:53');
  assert.match(podResolvConf(spec), /^nameserver fd00:10:96::10\n/);
  // A re-created pod's address is given as IPv6, within the node's /64.
  assert.equal(planPod(spec, 2, 5, 'fd00:10:244:2::40').ip, 'fd00:10:244:2::40');
  assert.throws(() => planPod(spec, 2, 5, 'fd00:10:244:1::40'), ConfigError);
  assert.throws(() => planPod(spec, 2, 5, '10.244.2.40'), ConfigError);
});

test('IPv6 only: no IPv4 address, route or forwarding anywhere; calico /128 behind fe80, bridge /64', () => {
  const all = [...routerCommands(spec), ...nodeCommands(spec, 1), ...nodeCommands(spec, 2), ...podCommands(spec, 1, 1), ...podCommands(spec, 2, 1)].map(line);
  assert.deepEqual(
    all.filter((l) => /\b(10\.|172\.31|169\.254|ipv4)/.test(l)),
    [],
  );
  assert.deepEqual(lines(routerCommands(spec)), [
    '(root): ip netns add kmco6-r',
    'kmco6-r: sysctl -q -w net.ipv6.conf.all.accept_dad=0',
    'kmco6-r: sysctl -q -w net.ipv6.conf.default.accept_dad=0',
    'kmco6-r: ip link set lo up',
    'kmco6-r: ip -6 addr add fd00:10:96::10/128 dev lo',
    'kmco6-r: sysctl -q -w net.ipv6.conf.all.forwarding=1',
  ]);
  assert.deepEqual(lines(podCommands(spec, 1, 1)).slice(-7), [
    'kmco6-n1: ip link set kmcv1 address ee:ee:ee:ee:ee:ee',
    'kmco6-n1: sysctl -q -w net.ipv6.conf.kmcv1.proxy_ndp=1',
    'kmco6-n1: ip link set kmcv1 mtu 1430 up',
    'kmco6-n1: ip -6 route add fd00:10:244:1::11/128 dev kmcv1',
    'kmco6-n1p1: ip -6 addr add fd00:10:244:1::11/128 dev eth0',
    'kmco6-n1p1: ip link set eth0 mtu 1430 up',
    'kmco6-n1p1: ip -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0',
  ]);
  assert.deepEqual(lines(podCommands(spec, 2, 1)).slice(-4), [
    'kmco6-n2: ip link set kmcv1 master kmcbr mtu 1500 up',
    'kmco6-n2p1: ip -6 addr add fd00:10:244:2::11/64 dev eth0',
    'kmco6-n2p1: ip link set eth0 mtu 1500 up',
    'kmco6-n2p1: ip -6 route add default via fd00:10:244:2::1 dev eth0',
  ]);
  assert.ok(lines(nodeCommands(spec, 1)).includes('kmco6-n1: ip link set kmcup mtu 1500 up'), 'the pod MTU leaves the uplink alone');
  assert.throws(() => masqueradeScript(spec, 1), ConfigError);
});

test('--ipv6 and --ipv6-only together are refused; a pod MTU is validated like --mtu', () => {
  assert.throws(() => buildSpec({ ipv6: true, ipv6Only: true }), /--ipv6 with --ipv6-only/);
  assert.throws(() => buildSpec({ podMtu: { 1: 1000 } }), /--pod-mtu 1000/);
  assert.equal('ipv6Only' in buildSpec(), false);
  assert.equal('podMtu' in buildSpec(), false);
});
