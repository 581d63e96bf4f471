import assert from 'node:assert/strict';
import { test } from 'node:test';
import { envName, mergeOptions, validateConfig } from '../../../src/sidecar/config.js';
import { ConfigError } from '../../../src/errors.js';

const ok = (flags: Record<string, string | boolean>, env: NodeJS.ProcessEnv = {}) => validateConfig(mergeOptions(flags, env));

function rejects(flags: Record<string, string | boolean>, pattern: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(
    () => ok(flags, env),
    (err: unknown) => err instanceof ConfigError && err.exitCode === 2 && pattern.test(err.message),
  );
}

test('defaults follow the design: VNI 4242, port 7471, control 7470, http :9470, drop unregistered', () => {
  const c = ok({ service: 'app-mcast.default.svc.cluster.local' });
  assert.equal(c.vni, 4242);
  assert.equal(c.vxlanPort, 7471);
  assert.equal(c.controlPort, 7470);
  assert.deepEqual(c.http, { host: '', port: 9470 });
  assert.equal(c.unregistered, 'drop');
  assert.equal(c.replication, 'selective');
  assert.equal(c.device, 'vx0');
  assert.deepEqual(c.addressing, { kind: 'auto' });
  assert.equal(c.heartbeatMs, 1000);
  assert.equal(c.peerExpiry, 5);
});

test('env vars KMCAST_<FLAG> fill in, flags win over them', () => {
  assert.equal(envName('--vxlan-port'), 'KMCAST_VXLAN_PORT');
  const c = ok({ vni: '7' }, { KMCAST_SERVICE: 'svc.ns', KMCAST_VNI: '9', KMCAST_PEERS: '10.0.0.1, 10.0.0.2', KMCAST_SETUP_ONLY: 'false' });
  assert.equal(c.service, 'svc.ns');
  assert.equal(c.vni, 7);
  assert.deepEqual(c.peers, ['10.0.0.1', '10.0.0.2']);
  assert.equal(c.setupOnly, false);
});

test('every invalid value names its flag and the allowed range', () => {
  rejects({ service: 's', vni: '0' }, /^--vni \(or KMCAST_VNI\): invalid value "0" \(must be an integer between 1 and 16777215\)/);
  rejects({ service: 's', vni: '16777216' }, /--vni/);
  rejects({ service: 's', vxlanPort: '70000' }, /--vxlan-port.*between 1 and 65535/);
  rejects({ service: 's', controlPort: '7471' }, /--control-port.*must differ from --vxlan-port/);
  rejects({ service: 's', peers: '10.0.0.1,nope' }, /--peers.*"nope" is not an IPv4 address/);
  rejects({ service: 'bad_name!' }, /--service.*not a DNS name/);
  rejects({ service: 's', addressing: 'magic' }, /--addressing.*must be auto or pod-ip/);
  rejects({ service: 's', addressing: 'subnet=100.64.0.0/16' }, /--addressing.*subnet addressing is not implemented/);
  rejects({ service: 's', unregistered: 'maybe' }, /--unregistered.*drop or flood/);
  rejects({ service: 's', replication: 'some' }, /--replication.*selective or flood/);
  rejects({ service: 's', broadcast: '10.0.0.0/33' }, /--broadcast/);
  rejects({ service: 's', dnsServer: 'dns.example:53' }, /--dns-server.*IP\[:PORT\]/);
  rejects({ service: 's', logLevel: 'loud' }, /--log-level/);
  rejects({ service: 's', setupOnly: 'perhaps' }, /--setup-only.*true or false/);
  rejects({ service: 's', interface: 'a-very-long-interface-name' }, /--interface/);
  rejects({}, /--service.*no peers to find/);
  rejects({}, /KMCAST_VNI/, { KMCAST_SERVICE: 's', KMCAST_VNI: 'x' });
});

test('derived values: directed broadcast address, dns server port, http address', () => {
  const c = ok({ peers: '10.0.0.2', broadcast: '10.244.0.0/16', dnsServer: '10.96.0.10', http: '127.0.0.1:9999' });
  assert.deepEqual(c.broadcast, { cidr: '10.244.0.0/16', address: '10.244.255.255' });
  assert.equal(c.dnsServer, '10.96.0.10:53');
  assert.deepEqual(c.http, { host: '127.0.0.1', port: 9999 });
  assert.equal(ok({ peers: '10.0.0.2', http: 'off' }).http, undefined);
  assert.equal(ok({ setupOnly: true }).setupOnly, true, '--setup-only needs no peers');
});

test('--capture: on by default, off turns the eth0 capture off, anything else names the flag', () => {
  assert.equal(ok({ service: 's' }).capture, 'on');
  assert.equal(ok({ service: 's' }, { KMCAST_CAPTURE: 'off' }).capture, 'off');
  rejects({ service: 's', capture: 'tc' }, /^--capture \(or KMCAST_CAPTURE\): invalid value "tc" \(must be on or off\)/);
});

test('--peers refuses addresses that are not unicast (exit 2 naming --peers)', () => {
  for (const bad of ['0.0.0.0', '224.0.0.1', '255.255.255.255', '239.1.1.1', '0.1.2.3', '240.0.0.1']) {
    rejects({ peers: `10.0.0.1,${bad}` }, new RegExp(`--peers.*"${bad.replace(/\./g, '\\.')}" is not a unicast IPv4 address`));
  }
});

test('--listed-peer-expiry: default 3 x --peer-expiry, never below it', () => {
  assert.equal(ok({ peers: '10.0.0.2' }).listedPeerExpiry, 15);
  assert.equal(ok({ peers: '10.0.0.2', peerExpiry: '4' }).listedPeerExpiry, 12);
  assert.equal(ok({ peers: '10.0.0.2', listedPeerExpiry: '7' }).listedPeerExpiry, 7);
  rejects({ peers: '10.0.0.2', peerExpiry: '8', listedPeerExpiry: '7' }, /--listed-peer-expiry.*at least --peer-expiry \(8\)/);
});

test('an IPv6-only pod: --pod-ip, --peers and --dns-server take IPv6 (canonical), --broadcast is refused', () => {
  const c = ok({ peers: 'FD00:10:244:2:0::11,fd00:10:244:3::11', podIp: 'fd00:10:244:1:0:0:0:11', dnsServer: '[fd00:10:96::10]:5353' });
  assert.deepEqual(c.peers, ['fd00:10:244:2::11', 'fd00:10:244:3::11']);
  assert.equal(c.podIp, 'fd00:10:244:1::11');
  assert.equal(c.dnsServer, '[fd00:10:96::10]:5353');
  assert.equal(ok({ service: 's', dnsServer: 'fd00:10:96::10' }).dnsServer, '[fd00:10:96::10]:53');
  rejects({ service: 's', podIp: 'fe80::1' }, /^--pod-ip.*"fe80::1" is not an IPv4 or a unicast IPv6 address/);
  rejects({ peers: 'ff05::1:3' }, /^--peers.*"ff05::1:3" is not a unicast IPv6 address/);
  rejects({ service: 's', podIp: 'fd00::11', broadcast: '10.244.0.0/16' }, /^--broadcast.*directed broadcast is IPv4: this pod's IP fd00::11 is IPv6/);
});
