import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NftClient } from '../../../src/kernel/nft.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { AllowList, allowListScript } from '../../../src/overlay/allowlist.js';
import { CAPTURE6_MATCH } from '../../../src/node/nft.js';
import { applyCapture, captureMatches, capturedPackets, captureScript, parseCapture } from '../../../src/overlay/capture.js';
import { fixture } from '../fixtures.js';

const SPEC = { underlay: 'eth0', device: 'vx0' };
const listed = (peers: string[]) =>
  JSON.stringify({
    nftables: [
      { set: { family: 'ip', name: 'peers', table: 'kmcast', type: 'ipv4_addr', ...(peers.length ? { elem: peers } : {}) } },
      { rule: { comment: 'kmcast-vxlan', expr: [{ counter: { packets: 3, bytes: 9 } }, { drop: null }] } },
    ],
  });

test('the capture script: an atomic replace of the netdev table, IGMP and ICMPv6 kept on eth0, multicast of both families and broadcast into vx0', () => {
  assert.deepEqual(captureScript(SPEC), [
    'table netdev kmcast',
    'delete table netdev kmcast',
    'table netdev kmcast {',
    '  chain capture {',
    '    type filter hook egress device "eth0" priority 0; policy accept;',
    '    ip protocol igmp accept',
    '    ip daddr { 224.0.0.0/4, 255.255.255.255 } counter fwd to "vx0" comment "kmcast-capture"',
    '    ip6 daddr ff00::/8 meta l4proto != 58 counter fwd to "vx0" comment "kmcast-capture6"',
    '  }',
    '  chain overlay-out {',
    '    type filter hook egress device "vx0" priority 0; policy accept;',
    '    meta l4proto 58 counter drop comment "kmcast-overlay-icmpv6"',
    '  }',
    '}',
  ]);
  // One definition of "IPv6 multicast kmcast carries": node mode's.
  assert.ok(captureScript(SPEC).some((l) => l.includes(CAPTURE6_MATCH)));
  assert.match(captureScript({ ...SPEC, broadcastAddress: '10.244.1.255' }).join('\n'), /ip daddr \{ 224\.0\.0\.0\/4, 255\.255\.255\.255, 10\.244\.1\.255 \}/);
});

test('parses the chains as nft lists them; a re-created vx0 leaves a bare index, which is drift', () => {
  const ok = parseCapture(fixture('iproute2/nft-capture6.txt'));
  assert.deepEqual(ok, {
    underlay: 'eth0',
    forwardTo: 'vx0',
    daddrs: ['224.0.0.0/4', '255.255.255.255'],
    igmpKept: true,
    packets: 0,
    ipv6: { forwardTo: 'vx0', packets: 0 },
    icmp6DroppedOn: 'vx0',
    icmp6Dropped: 0,
  });
  assert.equal(captureMatches(ok, SPEC), true);
  // An earlier agent's chain (IPv4 only, no overlay-out chain) is drift: replaced whole.
  const v4only = parseCapture(fixture('iproute2/nft-capture.txt'));
  assert.equal(v4only?.ipv6, undefined);
  assert.equal(captureMatches(v4only, SPEC), false);
  const stale6 = parseCapture(fixture('iproute2/nft-capture6-stale.txt'));
  assert.equal(stale6?.ipv6?.forwardTo, '3');
  assert.equal(captureMatches(stale6, SPEC), false);
  // The image without /etc/protocols lists ICMPv6 as 58.
  const numeric6 = fixture('iproute2/nft-capture6.txt').replaceAll('ipv6-icmp', '58');
  assert.equal(captureMatches(parseCapture(numeric6), SPEC), true);
  const icmpTaken = fixture('iproute2/nft-capture6.txt').replace('meta l4proto != ipv6-icmp ', '');
  assert.equal(captureMatches(parseCapture(icmpTaken), SPEC), false, 'a rule that would take ND and MLD is drift');
  const noOut = fixture('iproute2/nft-capture6.txt').replace(/\n\n\tchain overlay-out \{[\s\S]*?\n\t\}/, '');
  assert.notEqual(noOut, fixture('iproute2/nft-capture6.txt'));
  assert.equal(captureMatches(parseCapture(noOut), SPEC), false, "vx0's MLD must be kept off the overlay");
  assert.equal(
    capturedPackets(parseCapture(fixture('iproute2/nft-capture6.txt').replace(/packets 0 bytes 0 fwd to "vx0" comment "kmcast-capture6"/, 'packets 7 bytes 9 fwd to "vx0" comment "kmcast-capture6"'))),
    7,
  );
  const stale = parseCapture(fixture('iproute2/nft-capture-stale.txt'));
  assert.equal(stale?.forwardTo, '3');
  assert.equal(stale?.packets, 20);
  assert.equal(captureMatches(stale, SPEC), false);
  assert.equal(captureMatches(ok, { ...SPEC, broadcastAddress: '10.244.1.255' }), false, 'a missing address is drift');
  assert.equal(captureMatches(ok, { ...SPEC, underlay: 'net1' }), false);
  assert.equal(parseCapture('table netdev kmcast {\n}\n'), undefined);
  const noIgmp = fixture('iproute2/nft-capture6.txt').replace(/\t\tip protocol igmp accept\n/, '');
  assert.equal(captureMatches(parseCapture(noIgmp), SPEC), false, 'IGMP must stay on eth0');
  // An image without /etc/protocols (netbase), as the kmcast image: nft lists the number.
  const numeric = fixture('iproute2/nft-capture6.txt').replace(/ip protocol igmp accept/, 'ip protocol 2 accept');
  assert.notEqual(numeric, fixture('iproute2/nft-capture6.txt'));
  assert.equal(captureMatches(parseCapture(numeric), SPEC), true, 'ip protocol 2 is igmp');
  assert.equal(captureMatches(parseCapture(numeric.replace('ip protocol 2 accept', 'ip protocol 17 accept')), SPEC), false);
});

test('allow-list with a capture: one transaction for both tables, both read back', async () => {
  const script = allowListScript({ vxlanPort: 7471, controlPort: undefined, peers: ['10.0.0.2'], capture: SPEC });
  assert.match(script, /^table ip kmcast\ndelete table ip kmcast\n[\s\S]*\}\ntable netdev kmcast\ndelete table netdev kmcast\ntable netdev kmcast \{/);
  let captured = false;
  const r = new FakeRunner()
    .on('nft -j list table ip kmcast', { stdout: listed(['10.0.0.2']) })
    .on('nft list table netdev kmcast', () => (captured ? { stdout: fixture('iproute2/nft-capture6.txt') } : { code: 1 }))
    .on('nft -f -', () => {
      captured = true;
      return {};
    });
  const state = await new AllowList(r, 'kmcx').apply({ vxlanPort: 7471, controlPort: undefined, peers: ['10.0.0.2'], capture: SPEC });
  assert.equal(state.capture?.forwardTo, 'vx0');
  assert.deepEqual(r.commands(), ['nft -j list table ip kmcast', 'nft list table netdev kmcast', 'nft -f -', 'nft -j list table ip kmcast', 'nft list table netdev kmcast']);
  // Only the capture drifted: the allow-list's table (and its drop counters) is left alone.
  assert.match(r.calls[2]!.input ?? '', /^table netdev kmcast\ndelete table netdev kmcast\n/);
  assert.ok(r.calls.every((c) => c.netns === 'kmcx'));
});

test('fails closed when the capture does not read back; an allow-list without a capture never touches it', async () => {
  const stale = new FakeRunner().on('nft -j list table ip kmcast', { stdout: listed(['10.0.0.2']) }).on('nft list table netdev kmcast', { stdout: fixture('iproute2/nft-capture-stale.txt') });
  await assert.rejects(new AllowList(stale).apply({ vxlanPort: 7471, controlPort: undefined, peers: ['10.0.0.2'], capture: SPEC }), /verify eth0 capture/);
  const plain = new FakeRunner().on('nft -j list table ip kmcast', { stdout: listed(['10.0.0.2']) });
  await new AllowList(plain).apply({ vxlanPort: 7471, controlPort: undefined, peers: ['10.0.0.2'] });
  assert.deepEqual(plain.commands(), ['nft -j list table ip kmcast']);
  await assert.rejects(applyCapture(new NftClient(stale), SPEC), /verify eth0 capture/);
});

test('a kernel without the netdev egress hook is a capability error naming --capture off', async () => {
  const r = new FakeRunner().on('nft list', { code: 1 }).on('nft -f -', { code: 1, stderr: 'Error: Could not process rule: No such file or directory\n  type filter hook egress device "eth0"' });
  await assert.rejects(applyCapture(new NftClient(r), SPEC), (err: Error) => /--capture off/.test(err.message) && err.name === 'CapabilityError');
});

test('through the allow-list, a refused capture line is reported as the capture, not as a missing nft', async () => {
  const r = new FakeRunner()
    .on('nft -j list table ip kmcast', { code: 1 })
    .on('nft list', { code: 1 })
    .on('nft -f -', { code: 1, stderr: '/dev/stdin:7:62-66: Error: Interface does not exist\n    ip daddr { 224.0.0.0/4, 255.255.255.255 } counter fwd to "vx0" comment "kmcast-capture"' });
  await assert.rejects(new AllowList(r).apply({ vxlanPort: 7471, controlPort: undefined, peers: [], capture: SPEC }), /install eth0 capture: the overlay device or the pod interface does not exist/);
});
