/** Node mode on an IPv6 underlay: flags, what the underlay carries, the control protocol, and how status and doctor print it. */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { DnsDiscovery, unicastOnly6 } from '../../../src/discovery/dns.js';
import { answerQuery } from '../../../src/lab/dns-server.js';
import { decode, Encoder } from '../../../src/membership/codec.js';
import { formatHostPort, nodeClusterLabel, parseServerAddress, validateNodeConfig } from '../../../src/node/config.js';
import { NODE_LOCAL_STATE } from '../../../src/node/control.js';
import { evaluateNodeLimits } from '../../../src/node/doctor.js';
import { formatNodeStatus, peerEndpoint, peerNodesLine } from '../../../src/node/status-format.js';
import type { NodeStatus } from '../../../src/node/status-types.js';
import { carriedPacket, membersOverUnderlay } from '../../../src/node/underlay.js';

const KEY = Buffer.alloc(32, 7);

test('--node-ip, --peers and --dns-server take IPv6, canonical; bad ones name the flag', () => {
  const c = validateNodeConfig({ service: 'app', nodeIp: 'FD00:172:31:1:0::2', peers: 'fd00:172:31:1::2,FD00:172:31:2::2', dnsServer: '[fd00:10:96::10]:5353', insecureNoKey: true });
  assert.equal(c.nodeIp, 'fd00:172:31:1::2');
  assert.deepEqual(c.peers, ['fd00:172:31:1::2', 'fd00:172:31:2::2']);
  assert.equal(c.dnsServer, '[fd00:10:96::10]:5353');
  assert.equal(validateNodeConfig({ service: 'app', peers: '172.31.1.2', dnsServer: 'fd00:10:96::10' }).dnsServer, '[fd00:10:96::10]:53');
  assert.equal(validateNodeConfig({ service: 'app', peers: '172.31.1.2', dnsServer: '10.96.0.10' }).dnsServer, '10.96.0.10:53');
  assert.throws(() => validateNodeConfig({ service: 'app', peers: 'fe80::1' }), /--peers .*"fe80::1" is not a unicast IPv6 address/);
  assert.throws(() => validateNodeConfig({ service: 'app', peers: 'ff05::1' }), /--peers .*not a unicast IPv6/);
  assert.throws(() => validateNodeConfig({ service: 'app', peers: '172.31.1.2', nodeIp: 'fe80::1' }), /--node-ip .*"fe80::1" is not an IPv4 or a unicast IPv6 address/);
  assert.throws(() => validateNodeConfig({ service: 'app', peers: '172.31.1.2', dnsServer: '[fd00::1]:99999' }), /--dns-server .*\[IPv6\]:PORT/);
  assert.deepEqual(parseServerAddress('[::1]', 53), { host: '::1', port: 53 });
  assert.equal(parseServerAddress('[10.0.0.1]:53', 53), undefined);
  assert.equal(formatHostPort('fd00::1', 7473), '[fd00::1]:7473');
  assert.equal(formatHostPort('10.0.0.1', 7473), '10.0.0.1:7473');
});

test('what the underlay carries: 50 bytes of VXLAN over IPv4 (longer frames are fragmented), 70 over IPv6 (never fragmented)', () => {
  assert.equal(carriedPacket('172.31.1.2', 1500), 1450);
  assert.equal(carriedPacket('fd00:172:31:1::2', 1500), 1430);
  const members = [
    { podIp: 'a', mtu: 1430 },
    { podIp: 'b', mtu: 1500 },
    { podIp: 'c', mtu: undefined },
  ];
  assert.deepEqual(
    membersOverUnderlay(members, 'fd00:172:31:1::2', 1500).map((m) => m.podIp),
    ['b'],
  );
  assert.deepEqual(membersOverUnderlay(members, '172.31.1.2', 1500), [], 'IPv4 fragments the outer packet: nothing is lost');
});

function status6(over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    mode: 'node',
    version: '0.1.0',
    nodeIp: 'fd00:172:31:1::2',
    uplink: 'kmcup',
    underlayMtu: 1500,
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
        listed: ['fd00:10:244:1::11', 'fd00:10:244:2::11'],
        localMembers: [
          { podIp: 'fd00:10:244:1::11', hostVeth: 'kmcv1', netns: 'cni-1', groups: ['ff05::1:3'], programmed: true, mtu: 1500 },
          { podIp: 'fd00:10:244:1::12', hostVeth: 'kmcv2', netns: 'cni-2', groups: [], programmed: true, mtu: 1430 },
        ],
        announced: true,
        groups: ['ff05::1:3'],
        peers: [{ ip: 'fd00:172:31:2::2', state: 'alive', lastSeen: '2026-01-01T00:00:00.000Z', groups: ['ff05::1:3'], sources: ['static'] }],
        entries: { fdb: 1, mdb: 2 },
        peerNodes: { listed: 2, heard: 1, waitingFor: ['fd00:172:31:3::2'], degraded: true, boundMs: 5000, leftMs: 0 },
      },
    ],
    ruleset: { installed: true, chains: 5 },
    allowList: { installed: true, peers: 1 },
    drops: { control: {} },
    ...over,
  };
}

test('status and doctor print IPv6 peer nodes as [addr]:port; doctor names members whose MTU the IPv6 underlay cannot carry', () => {
  assert.equal(peerEndpoint('fd00:172:31:2::2', 7473), '[fd00:172:31:2::2]:7473');
  assert.equal(peerEndpoint('172.31.2.2', 7473), '172.31.2.2');
  const s = status6();
  const text = formatNodeStatus(s, new Date('2026-01-01T00:00:01.000Z'));
  assert.match(text, /^node agent 0\.1\.0 {2}node \[fd00:172:31:1::2\]:7473 {2}uplink kmcup/);
  assert.match(text, /\n {2}\[fd00:172:31:2::2\]:7473 +alive +1\.0s ago +ff05::1:3\n/);
  assert.match(peerNodesLine(s.domains[0]!.peerNodes!, 7473), /DEGRADED, \[fd00:172:31:3::2\]:7473 not heard/);
  const limits = evaluateNodeLimits(s);
  assert.equal(limits.status, 'WARN');
  assert.match(limits.detail, /IPv6 underlay \(MTU 1500\) a frame crosses only up to 1430 bytes .* fd00:10:244:1::11 \(MTU 1500\) may send longer ones/);
  assert.doesNotMatch(limits.detail, /::12/);
  assert.equal(evaluateNodeLimits(status6({ nodeIp: '172.31.1.2' })).status, 'OK', 'an IPv4 underlay fragments: no warning');
  assert.equal(evaluateNodeLimits(status6({ underlayMtu: undefined })).status, 'OK', 'an older agent does not say its MTU');
});

test('members and peers from DNS: A records, AAAA ones when the name has no A record (auto), or AAAA only (6)', async (t) => {
  const records = {
    'dual.test': ['10.244.1.11', 'fd00:10:244:1::11'],
    'v6.test': ['fd00:10:244:2::0b', 'fd00:10:244:1::11', 'fe80::1', 'ff05::1:3'],
    'v4.test': ['10.244.1.12'],
  };
  const server = dgram.createSocket('udp4');
  server.on('message', (msg, rinfo) => {
    const res = answerQuery(msg, records);
    if (res) server.send(res, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const at = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ignored: string[][] = [];
  const dns = (name: string, family: 4 | 6 | 'auto'): DnsDiscovery => new DnsDiscovery(name, { server: at, family, onIgnored: (_, x) => ignored.push([...x]) });
  assert.deepEqual(await dns('dual.test', 'auto').resolve(), ['10.244.1.11'], 'a dual-stack Service keeps its IPv4 identity');
  assert.deepEqual(await dns('v6.test', 'auto').resolve(), ['fd00:10:244:1::11', 'fd00:10:244:2::b'], 'an IPv6-only one: AAAA, canonical, sorted');
  assert.deepEqual(ignored.at(-1), ['fe80::1', 'ff05::1:3']);
  assert.deepEqual(await dns('dual.test', 6).resolve(), ['fd00:10:244:1::11']);
  assert.deepEqual(await dns('v4.test', 6).resolve(), [], 'no AAAA record: no peer');
  assert.deepEqual(await dns('v6.test', 4).resolve(), []);
  assert.deepEqual(await dns('nxdomain.test', 'auto').resolve(), []);
  assert.deepEqual(unicastOnly6(['::', '::1', '::ffff:10.0.0.1', 'fd00::1']), ['fd00::1']);
});

test('the control protocol between IPv6 nodes: version 2, the node address as sender, "none" as overlay; IPv4 nodes keep version 1', () => {
  const label = nodeClusterLabel({ service: 'app.default.svc.cluster.local', vni: 100, device: 'kmcvx100' });
  for (const [sender, groups, version] of [
    ['fd00:172:31:1::2', [], 2],
    ['fd00:172:31:1::2', ['239.1.1.1'], 2],
    ['172.31.1.2', ['239.1.1.1'], 1],
  ] as const) {
    const [dg] = new Encoder({ sender, cluster: label, key: KEY }).state({ ...NODE_LOCAL_STATE, groups: [...groups] }, Date.UTC(2026, 0, 1));
    assert.equal(dg!.readUInt8(4), version, `${sender} ${groups.join()}`);
    const r = decode(dg!, { keys: [KEY], cluster: label });
    assert.ok(r.ok);
    assert.deepEqual([r.msg.sender, r.msg.overlay, r.msg.mac, r.msg.groups], [sender, '0.0.0.0', '00:00:00:00:00:00', groups]);
    // 79 + label + 4 per IPv4 group + 32 of HMAC: the version 2 layout of docs/protocol.md.
    if (version === 2) assert.equal(dg!.length, 79 + Buffer.byteLength(label) + 4 * groups.length + 32);
  }
});
