import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/errors.js';
import type { ParseContext } from '../../../src/probe/options.js';
import { DEFAULT_GROUP, DEFAULT_PORT, parseGroup, parsePeers, parseProbeOptions } from '../../../src/probe/options.js';
import { isMulticast } from '../../../src/net/ipv4.js';

const ctx: ParseContext = {
  hostname: 'pod-a',
  interfaces: {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: '127.0.0.1/8' }],
    vx0: [{ address: '10.1.2.3', family: 'IPv4', internal: false, netmask: '255.255.255.255', mac: '02:00:00:00:00:01', cidr: '10.1.2.3/32' }],
  },
};

test('defaults: local-scope group, 10 pps for 10 s, 64 B, TTL 1, host name as id', () => {
  const c = parseProbeOptions({}, ctx);
  assert.equal(c.group, DEFAULT_GROUP);
  assert.equal(c.port, DEFAULT_PORT);
  assert.equal(c.broadcast, false);
  assert.equal(c.count, 100);
  assert.equal(c.size, 64);
  assert.equal(c.ttl, 1);
  assert.equal(c.id, 'pod-a');
  assert.equal(c.mode, 'both');
  assert.equal(c.maxLossPercent, undefined);
  assert.equal(c.interfaceAddress, undefined);
});

test('duration becomes rate x duration; count is taken as is', () => {
  assert.equal(parseProbeOptions({ rate: '1000', duration: '2.5' }, ctx).count, 2500);
  assert.equal(parseProbeOptions({ rate: '1000', count: '7' }, ctx).count, 7);
});

test('group parsing, broadcast detection and interface by name or address', () => {
  assert.deepEqual(parseGroup('239.1.2.3:5000'), { group: '239.1.2.3', port: 5000, family: 4 });
  assert.deepEqual(parseGroup('239.1.2.3'), { group: '239.1.2.3', port: DEFAULT_PORT, family: 4 });
  assert.deepEqual(parseGroup('[FF05:0::1:3]:5000'), { group: 'ff05::1:3', port: 5000, family: 6 });
  assert.deepEqual(parseGroup('ff02::fb'), { group: 'ff02::fb', port: DEFAULT_PORT, family: 6 });
  assert.equal(isMulticast('224.0.0.1'), true);
  assert.equal(isMulticast('239.255.255.255'), true);
  assert.equal(isMulticast('240.0.0.1'), false);
  assert.equal(parseProbeOptions({ group: '255.255.255.255:9' }, ctx).broadcast, true);
  assert.equal(parseProbeOptions({ interface: 'vx0' }, ctx).interfaceAddress, '10.1.2.3');
  assert.equal(parseProbeOptions({ interface: '10.9.9.9' }, ctx).interfaceAddress, '10.9.9.9');
  assert.deepEqual(parsePeers(' 10.0.0.2,10.0.0.1,,10.0.0.2 '), ['10.0.0.2', '10.0.0.1']);
  assert.deepEqual(parsePeers('FD00::2,fd00:0::2,fd00::1', 6), ['fd00::2', 'fd00::1'], 'IPv6 peers in one spelling');
});

test('an IPv6 group makes an IPv6 probe: the interface by name or address, peers of its family, a smaller payload limit', () => {
  const six = {
    lo: [{ address: '::1', family: 'IPv6' }],
    vx0: [
      { address: '10.1.2.3', family: 'IPv4' },
      { address: 'fd00::7', family: 'IPv6' },
    ],
  } as unknown as typeof ctx.interfaces;
  const c = parseProbeOptions({ group: '[ff05::1:3]:4000', interface: 'vx0', peers: 'fd00::2' }, { ...ctx, interfaces: six });
  assert.deepEqual([c.family, c.group, c.port, c.broadcast, c.interfaceAddress, c.interfaceName, c.peers], [6, 'ff05::1:3', 4000, false, '::%vx0', 'vx0', ['fd00::2']]);
  assert.equal(parseProbeOptions({ group: '[ff05::1:3]:4000', interface: 'FD00::7' }, { ...ctx, interfaces: six }).interfaceName, 'vx0');
  for (const [raw, re] of [
    [{ group: '[fd00::1]:4000' }, /fd00::1 is not an IPv6 multicast group \(ff00::\/8\); IPv6 has no broadcast/],
    [{ group: '[ff05::zz]:4000' }, /is not an IPv6 address/],
    [{ group: '[ff05::1]:4000', peers: '10.0.0.1' }, /expected a comma-separated list of IPv6 addresses \(the --group is IPv6\)/],
    [{ group: '[ff05::1]:4000', peers: 'fe80::1' }, /invalid --peers entry "fe80::1"/],
    [{ group: '[ff05::1]:4000', size: '65500' }, /invalid --size "65500": must be an integer between \d+ and 65487/],
    [{ group: '[ff05::1]:4000', interface: 'eth9' }, /no such interface .* one of its IPv6 addresses/],
  ] as const) {
    assert.throws(
      () => parseProbeOptions(raw, { ...ctx, interfaces: six }),
      (err: unknown) => err instanceof ConfigError && re.test(err.message),
      JSON.stringify(raw),
    );
  }
});

test('mistakes name the flag and what to do', () => {
  const cases: [Parameters<typeof parseProbeOptions>[0], RegExp][] = [
    [{ group: '239.1.1' }, /invalid --group "239.1.1": expected IPV4\[:PORT\] or \[IPV6\]:PORT/],
    [{ group: '239.1.1.1:0' }, /invalid --group port "0"/],
    [{ count: '5', duration: '1' }, /conflicting --count and --duration/],
    [{ sendOnly: true, receiveOnly: true }, /conflicting --send-only and --receive-only/],
    [{ rate: '0' }, /--rate 0 \(unlimited\) needs --count/],
    [{ rate: 'fast' }, /invalid --rate "fast"/],
    [{ size: '20' }, /invalid --size "20": must be an integer between 33 and 65507/],
    [{ ttl: '0' }, /invalid --ttl/],
    [{ maxLoss: '101' }, /invalid --max-loss/],
    [{ interface: 'eth9' }, /no such interface \(have: lo, vx0\)/],
    [{ peers: '10.0.0.1,pod-b' }, /invalid --peers entry "pod-b"/],
    [{ id: 'x'.repeat(65) }, /invalid --id/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(
      () => parseProbeOptions(raw, ctx),
      (err: unknown) => err instanceof ConfigError && re.test(err.message),
      JSON.stringify(raw),
    );
  }
});
