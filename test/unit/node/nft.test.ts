import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deliveryTiers, desiredChains, ipv4SourceOf, missedBy, missedByAll, NO_IPV4, parseRuleset, removeScript, MAX_DUPS_PER_RULE, renderRuleset, rulesetMismatch } from '../../../src/node/nft.js';
import { fixture } from '../fixtures.js';

test('per domain a VXLAN chain into the delivery hop, a delivery chain, one capture chain per member', () => {
  const chains = desiredChains([
    { vni: 200, device: 'kmcvx200', members: ['kmcv3'] },
    { vni: 100, device: 'kmcvx100', members: ['kmcv10', 'kmcv2', 'kmcv1'] },
  ]);
  assert.deepEqual(
    chains.map((c) => [c.name, c.device, c.dups.join(' '), c.fwd ?? '-', c.drop, c.policy]),
    [
      ['vx-100', 'kmcvx100', '', 'kmcdi100', false, 'drop'],
      ['dl-100', 'kmcdr100', 'kmcv1 kmcv2 kmcv10', '-', true, 'drop'],
      ['br-100', 'kmcdb100', '', '-', true, 'drop'],
      ['cap-kmcv1', 'kmcv1', 'kmcv2 kmcv10', 'kmcvx100', false, 'accept'],
      ['cap-kmcv2', 'kmcv2', 'kmcv1 kmcv10', 'kmcvx100', false, 'accept'],
      ['cap-kmcv10', 'kmcv10', 'kmcv1 kmcv2', 'kmcvx100', false, 'accept'],
      ['vx-200', 'kmcvx200', '', 'kmcdi200', false, 'drop'],
      ['dl-200', 'kmcdr200', 'kmcv3', '-', true, 'drop'],
      ['br-200', 'kmcdb200', '', '-', true, 'drop'],
      ['cap-kmcv3', 'kmcv3', '', 'kmcvx200', false, 'accept'],
    ],
  );
});

test('a veth two domains list belongs to the lower VNI only (one eth0, one forwarding chain)', () => {
  const chains = desiredChains([
    { vni: 100, device: 'kmcvx100', members: ['kmcv1'] },
    { vni: 200, device: 'kmcvx200', members: ['kmcv1', 'kmcv2'] },
  ]);
  assert.deepEqual(chains.find((c) => c.name === 'dl-200')?.dups, ['kmcv2']);
  assert.equal(chains.filter((c) => c.name === 'cap-kmcv1').length, 1);
});

test('the script replaces the whole table atomically: declare, delete, recreate', () => {
  const script = renderRuleset(desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv2', 'kmcv1'] }]));
  assert.equal(
    script,
    [
      'table netdev kmcast-node',
      'delete table netdev kmcast-node',
      'table netdev kmcast-node {',
      '  chain vx-100 {',
      '    type filter hook ingress device "kmcvx100" priority -500; policy drop;',
      '    ip daddr { 224.0.0.0/4, 255.255.255.255 } counter fwd to "kmcdi100"',
      '    ip6 daddr ff00::/8 meta l4proto != 58 counter fwd to "kmcdi100"',
      '  }',
      '  chain dl-100 {',
      '    type filter hook ingress device "kmcdr100" priority -500; policy drop;',
      '    ip daddr { 224.0.0.0/4, 255.255.255.255 } counter dup to "kmcv1" dup to "kmcv2" drop',
      '    ip6 daddr ff00::/8 meta l4proto != 58 counter dup to "kmcv1" dup to "kmcv2" drop',
      '  }',
      '  chain br-100 {',
      '    type filter hook ingress device "kmcdb100" priority -500; policy drop;',
      '    counter drop',
      '  }',
      '  chain cap-kmcv1 {',
      '    type filter hook ingress device "kmcv1" priority -500; policy accept;',
      '    ip daddr { 224.0.0.0/4, 255.255.255.255 } counter dup to "kmcv2" fwd to "kmcvx100"',
      '    ip6 daddr ff00::/8 meta l4proto != 58 counter dup to "kmcv2" fwd to "kmcvx100"',
      '  }',
      '  chain cap-kmcv2 {',
      '    type filter hook ingress device "kmcv2" priority -500; policy accept;',
      '    ip daddr { 224.0.0.0/4, 255.255.255.255 } counter dup to "kmcv1" fwd to "kmcvx100"',
      '    ip6 daddr ff00::/8 meta l4proto != 58 counter dup to "kmcv1" fwd to "kmcvx100"',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  assert.equal(removeScript(), 'table netdev kmcast-node\ndelete table netdev kmcast-node\n');
});

test('the recorded read-back of that script matches it exactly', () => {
  const want = desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv1', 'kmcv2'] }]);
  const have = parseRuleset(fixture('iproute2/node/nft-node.json'));
  assert.equal(rulesetMismatch(want, have), undefined);
  assert.equal(have.get('cap-kmcv1')?.fwd, 'kmcvx100');
  assert.equal(have.get('vx-100')?.fwd, 'kmcdi100');
  assert.deepEqual(have.get('vx-100')?.dups, []);
  assert.deepEqual(have.get('dl-100')?.dups, ['kmcv1', 'kmcv2']);
  assert.equal(have.get('dl-100')?.packets, 0);
  assert.equal(have.get('vx-100')?.policy, 'drop', 'only multicast and broadcast enter the delivery hop; the rest is dropped');
  assert.equal(have.get('dl-100')?.policy, 'drop');
  // A delivery chain that accepts the rest (the pre-policy ruleset) is a mismatch to repair.
  const open = new Map(have);
  open.set('dl-100', { ...have.get('dl-100')!, policy: 'accept' });
  assert.match(rulesetMismatch(want, open) ?? '', /chain dl-100 differs/);
  // The ruleset before the delivery hop (copies straight from the VXLAN device) is repaired too.
  const old = new Map(have);
  old.set('vx-100', { ...have.get('vx-100')!, dups: ['kmcv1', 'kmcv2'], fwd: undefined, drop: true });
  old.delete('dl-100');
  assert.match(rulesetMismatch(want, old) ?? '', /chain vx-100 differs/);
});

test('a rule whose device was deleted reads back as stale (nft prints the ifindex): re-apply', () => {
  const want = desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv1', 'kmcv2'] }]);
  const have = parseRuleset(fixture('iproute2/node/nft-node-stale.json'));
  assert.equal(have.get('dl-100')?.stale, true);
  assert.match(rulesetMismatch(want, have) ?? '', /deleted device/);
  // Without kmcv2 the wanted set no longer has its chain: the extra chain is reported.
  const fewer = desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv1'] }]);
  assert.match(rulesetMismatch(fewer, have) ?? '', /unexpected chain cap-kmcv2|differs|deleted/);
});

test('missing chains, extra rules and garbage are mismatches, never exceptions', () => {
  const want = desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv1'] }]);
  assert.match(rulesetMismatch(want, new Map()) ?? '', /missing/);
  assert.equal(parseRuleset('not json').size, 0);
  assert.equal(parseRuleset('{"nftables": 3}').size, 0);
});

test('delivery tiers: one rule per member MTU, shortest first, then what fits nobody; missed counts per member', () => {
  const mtus = new Map([
    ['kmcv1', 1500],
    ['kmcv2', 1450],
    ['kmcv3', 9000],
  ]);
  const tiers = deliveryTiers(['kmcv1', 'kmcv2', 'kmcv3'], mtus);
  assert.deepEqual(tiers, [
    { max: 1450, dups: ['kmcv1', 'kmcv2', 'kmcv3'] },
    { max: 1500, dups: ['kmcv1', 'kmcv3'] },
    { max: 9000, dups: ['kmcv3'] },
    { max: undefined, dups: [] },
  ]);
  assert.deepEqual(
    deliveryTiers(['kmcv1', 'kmcv4'], mtus),
    [
      { max: 1500, dups: ['kmcv1', 'kmcv4'] },
      { max: undefined, dups: ['kmcv4'] },
    ],
    'an unknown MTU is never limited',
  );
  assert.deepEqual(deliveryTiers([], mtus), [{ max: undefined, dups: [] }]);
  const want = desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv1', 'kmcv2', 'kmcv3'], mtus }]);
  const script = renderRuleset(want);
  assert.match(
    script,
    /chain dl-100 \{\n.*policy drop;\n {4}ip daddr \{ 224\.0\.0\.0\/4, 255\.255\.255\.255 \} ip length <= 1450 counter dup to "kmcv1" dup to "kmcv2" dup to "kmcv3" drop\n {4}ip daddr .* ip length <= 1500 counter dup to "kmcv1" dup to "kmcv3" drop\n.* ip length <= 9000 counter dup to "kmcv3" drop\n {4}ip daddr \{ 224\.0\.0\.0\/4, 255\.255\.255\.255 \} counter drop\n/,
  );
  // The same tiers for IPv6, bounded by the payload length (40 bytes of header less).
  assert.match(
    script,
    /\n {4}ip6 daddr ff00::\/8 meta l4proto != 58 ip6 length <= 1410 counter dup to "kmcv1" dup to "kmcv2" dup to "kmcv3" drop\n.* ip6 length <= 1460 counter dup to "kmcv1" dup to "kmcv3" drop\n.* ip6 length <= 8960 counter dup to "kmcv3" drop\n {4}ip6 daddr ff00::\/8 meta l4proto != 58 counter drop\n {2}\}/,
  );
  // As the kernel lists it (recorded from that script; the rule counters edited to 10, 3, 2, 1).
  const have = parseRuleset(fixture('iproute2/node/nft-node-tiers.json'));
  assert.equal(rulesetMismatch(want, have), undefined);
  const dl = have.get('dl-100')!;
  assert.deepEqual(
    dl.tiers.map((t) => [t.max ?? null, t.packets]),
    [
      [1450, 10],
      [1500, 3],
      [9000, 2],
      [null, 1],
    ],
  );
  // The IPv6 tiers read back with the frame sizes, their counters (edited to 5, 4, 0, 0) apart.
  assert.deepEqual(
    dl.v6?.tiers.map((t) => [t.max ?? null, t.packets]),
    [
      [1450, 5],
      [1500, 4],
      [9000, 0],
      [null, 0],
    ],
  );
  assert.equal(missedBy(dl, 'kmcv2'), 3 + 2 + 1 + 4);
  // Where nft finds no /etc/protocols (the kmcast image), it prints ICMPv6 as 58: the same rules.
  assert.equal(rulesetMismatch(want, parseRuleset(fixture('iproute2/node/nft-node-tiers.json').replaceAll('"ipv6-icmp"', '58'))), undefined);
  assert.equal(missedBy(dl, 'kmcv1'), 2 + 1);
  assert.equal(missedBy(dl, 'kmcv3'), 1);
  assert.equal(missedBy(dl, 'kmcv9'), 0, 'not a member');
  assert.equal(missedByAll(dl), 1);
  // An MTU change is a different ruleset.
  const lower = desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv1', 'kmcv2', 'kmcv3'], mtus: new Map([...mtus, ['kmcv1', 1400]]) }]);
  assert.match(rulesetMismatch(lower, have) ?? '', /chain dl-100 (rule 1 )?differs/);
});

test("a member's capture drops (and counts) what it sends with another source than its own IP", () => {
  const plane = {
    vni: 100,
    device: 'kmcvx100',
    members: ['kmcv1', 'kmcv2'],
    sources: new Map([
      ['kmcv1', '10.244.1.11'],
      ['kmcv2', '10.244.1.12'],
    ]),
    sources6: new Map([['kmcv1', ['fd00:10:244:1::b']]]),
  };
  const want = desiredChains([plane]);
  const script = renderRuleset(want);
  assert.match(
    script,
    /chain cap-kmcv1 \{\n.*\n {4}ip daddr \{ 224\.0\.0\.0\/4, 255\.255\.255\.255 \} ip saddr != 10\.244\.1\.11 counter drop\n {4}ip6 daddr ff00::\/8 meta l4proto != 58 ip6 saddr != \{ fe80::\/10, fd00:10:244:1::b \} counter drop\n {4}ip daddr .* counter dup to "kmcv2" fwd to "kmcvx100"\n/,
    'the guards come before the capture: the member IPv4, its link-local and global IPv6 addresses',
  );
  assert.match(script, /chain cap-kmcv2 \{\n.*\n.*\n {4}ip6 daddr .* ip6 saddr != \{ fe80::\/10 \} counter drop\n/, 'without known IPv6 addresses only link-local IPv6 sources pass');
  assert.doesNotMatch(script.split('chain cap-')[0]!, /saddr/, 'the VXLAN and delivery chains have no guard');
  // As nft read it back after loading that script.
  const have = parseRuleset(fixture('iproute2/node/nft-node-source.json'));
  assert.equal(rulesetMismatch(want, have), undefined);
  assert.equal(have.get('cap-kmcv1')?.source, '10.244.1.11');
  assert.deepEqual(have.get('cap-kmcv1')?.source6, ['fd00:10:244:1::b', 'fe80::/10']);
  assert.match(rulesetMismatch(desiredChains([{ ...plane, sources6: undefined }]), have) ?? '', /cap-kmcv1 IPv6 sources differ/, 'an address gone from the pod is no longer allowed');
  assert.equal(have.get('cap-kmcv1')?.rules, 1, 'the guard is no tier of the capture');
  assert.equal(have.get('cap-kmcv1')?.spoofed, 0);
  // A ruleset without the guard (an older agent's), or with another member's IP, is repaired.
  const unguarded = desiredChains([{ ...plane, sources: undefined }]);
  assert.match(rulesetMismatch(want, parseRuleset(fixture('iproute2/node/nft-node.json'))) ?? '', /chain cap-kmcv1 differs/);
  assert.match(rulesetMismatch(unguarded, have) ?? '', /chain cap-kmcv1 differs/);
  const moved = desiredChains([
    {
      ...plane,
      sources: new Map([
        ['kmcv1', '10.244.1.99'],
        ['kmcv2', '10.244.1.12'],
      ]),
    },
  ]);
  assert.match(rulesetMismatch(moved, have) ?? '', /chain cap-kmcv1 differs/);
  // The guard's counter is the member's spoofed count; the capture's packets stay apart.
  const counted = parseRuleset(fixture('iproute2/node/nft-node-source.json').replace(/("saddr"[\s\S]*?"counter": \{\s*"packets": )0/, '$17'));
  assert.equal(counted.get('cap-kmcv1')?.spoofed, 7);
  assert.equal(counted.get('cap-kmcv1')?.packets, 0);
});

test('a domain of 100 members on one node: dup lists split over rules the kernel takes (at most 128 expressions each), read back as one', () => {
  const members = Array.from({ length: 100 }, (_, i) => `kmcv${i + 1}`);
  const mtus = new Map(members.map((m) => [m, 1500]));
  const want = desiredChains([{ vni: 100, device: 'kmcvx100', members, mtus }]);
  const script = renderRuleset(want);
  const dl = script.slice(script.indexOf('chain dl-100'), script.indexOf('chain br-100'));
  const rules = dl.split('\n').filter((l) => l.includes('ip daddr'));
  assert.equal(rules.length, 4, 'the 1500 tier in three rules (48, 48, 4 dups), then what fits nobody');
  assert.ok(rules.every((l) => (l.match(/dup to/g) ?? []).length <= MAX_DUPS_PER_RULE));
  assert.deepEqual(
    rules.map((l) => [l.includes('counter'), l.endsWith('drop')]),
    [
      [true, false],
      [false, false],
      [false, true],
      [true, true],
    ],
    'only the first counts, only the last ends the tier',
  );
  // As the kernel took that script (100 veths) and listed it (two of its chains kept).
  const have = parseRuleset(fixture('iproute2/node/nft-node-100.json'));
  const got = have.get('dl-100')!;
  const wanted = want.find((c) => c.name === 'dl-100')!;
  assert.equal(got.rules, 2, 'two logical rules: the 1500 tier and the rest');
  assert.equal(got.stale, false);
  assert.deepEqual(
    got.tiers.map((t) => [t.max, t.dups.length]),
    [
      [1500, 100],
      [undefined, 0],
    ],
  );
  assert.deepEqual(got.tiers[0]!.dups, wanted.tiers![0]!.dups);
  const cap = have.get('cap-kmcv1')!;
  assert.deepEqual([cap.rules, cap.dups.length, cap.fwd], [1, 99, 'kmcvx100']);
  assert.equal(
    rulesetMismatch(
      want.filter((c) => c.name === 'dl-100' || c.name === 'cap-kmcv1'),
      have,
    ),
    undefined,
  );
});

test('an IPv6-only member (no IPv4 address): every IPv4 datagram it sends is spoofed, dropped and counted; its IPv6 guard takes its own address', () => {
  assert.equal(ipv4SourceOf('fd00:10:244:2::11'), NO_IPV4);
  assert.equal(ipv4SourceOf('10.244.2.11'), '10.244.2.11');
  const mtus = new Map([
    ['kmcv1', 1430],
    ['kmcv2', 1430],
  ]);
  const planes = [
    {
      vni: 100,
      device: 'kmcvx100',
      members: ['kmcv1', 'kmcv2'],
      mtus,
      sources: new Map([
        ['kmcv1', ipv4SourceOf('fd00:10:244:2::11')],
        ['kmcv2', ipv4SourceOf('fd00:10:244:2::12')],
      ]),
      sources6: new Map([
        ['kmcv1', ['fd00:10:244:2::11', 'fd00:10:244:2::11']],
        ['kmcv2', ['fd00:10:244:2::12']],
      ]),
    },
    { vni: 200, device: 'kmcvx200', members: [] },
  ];
  const want = desiredChains(planes);
  const script = renderRuleset(want);
  assert.match(
    script,
    /chain cap-kmcv1 \{\n.*\n {4}ip daddr \{ 224\.0\.0\.0\/4, 255\.255\.255\.255 \} ip saddr 0\.0\.0\.0\/0 counter drop\n {4}ip6 daddr .* ip6 saddr != \{ fe80::\/10, fd00:10:244:2::11 \} counter drop\n/,
  );
  // As this kernel read it back on an IPv6-only lab's bridge node, after n2p2 sent two IPv4 datagrams.
  const have = parseRuleset(fixture('iproute2/node/nft-node-ipv6only.json'));
  assert.equal(rulesetMismatch(want, have), undefined);
  assert.equal(have.get('cap-kmcv1')?.source, NO_IPV4);
  assert.deepEqual([have.get('cap-kmcv1')?.spoofed, have.get('cap-kmcv2')?.spoofed], [0, 2]);
  // A member that gained an IPv4 address (dual stack) is a different guard: reinstalled.
  const dual = desiredChains([
    {
      ...planes[0]!,
      sources: new Map([
        ['kmcv1', '10.244.2.11'],
        ['kmcv2', '10.244.2.12'],
      ]),
    },
    planes[1]!,
  ]);
  assert.match(rulesetMismatch(dual, have) ?? '', /chain cap-kmcv1 differs/);
});

test('on an IPv6 underlay each capture chain counts, per family, the frames longer than the underlay carries; it decides nothing', () => {
  const planes = [
    {
      vni: 100,
      device: 'kmcvx100',
      members: ['kmcv1', 'kmcv2'],
      mtus: new Map([
        ['kmcv1', 1500],
        ['kmcv2', 1500],
      ]),
      sources: new Map([
        ['kmcv1', ipv4SourceOf('fd00:10:244:2::11')],
        ['kmcv2', ipv4SourceOf('fd00:10:244:2::12')],
      ]),
      sources6: new Map([
        ['kmcv1', ['fd00:10:244:2::11']],
        ['kmcv2', ['fd00:10:244:2::12']],
      ]),
      carried: 1430,
    },
  ];
  const want = desiredChains(planes);
  const script = renderRuleset(want);
  assert.match(
    script,
    /\n {4}ip daddr \{ 224\.0\.0\.0\/4, 255\.255\.255\.255 \} ip length > 1430 counter comment "kmcast-overlong"\n {4}ip6 daddr ff00::\/8 meta l4proto != 58 ip6 length > 1390 counter comment "kmcast-overlong"\n/,
  );
  assert.doesNotMatch(renderRuleset(desiredChains([{ ...planes[0]!, carried: undefined }])), /overlong/, 'an IPv4 underlay fragments: nothing to count');
  // As this kernel read it back after the member on kmcv1 sent one 100-byte and two 1400-byte
  // IPv6 datagrams (1448-byte packets): two over 1430, all three captured.
  const have = parseRuleset(fixture('iproute2/node/nft-node-overlong.json'));
  assert.equal(rulesetMismatch(want, have), undefined);
  assert.deepEqual([have.get('cap-kmcv1')?.overlong, have.get('cap-kmcv1')?.overlongPackets, have.get('cap-kmcv1')?.v6?.packets], [1430, 2, 3]);
  assert.equal(have.get('cap-kmcv2')?.overlongPackets, 0);
  // The counting rules are not dup/fwd pieces: the capture rules read as before.
  assert.deepEqual([have.get('cap-kmcv1')?.dups, have.get('cap-kmcv1')?.fwd, have.get('cap-kmcv1')?.rules], [['kmcv2'], 'kmcvx100', 1]);
  // Another underlay MTU (or none: an IPv4 underlay) is a different table.
  assert.match(rulesetMismatch(desiredChains([{ ...planes[0]!, carried: 1380 }]), have) ?? '', /counts frames over 1430, not 1380/);
  assert.match(rulesetMismatch(desiredChains([{ ...planes[0]!, carried: undefined }]), have) ?? '', /counts frames over 1430, not null/);
  // One family's counting rule alone, or one with a verdict, is not a rule kmcast writes.
  const oneFamily = fixture('iproute2/node/nft-node-overlong.json').replace(
    /"op": ">",\s*"left": \{\s*"payload": \{\s*"protocol": "ip6",\s*"field": "length"\s*\}\s*\},\s*"right": 1390/,
    '"op": ">", "left": {"payload": {"protocol": "ip6", "field": "length"}}, "right": 1000',
  );
  assert.notEqual(oneFamily, fixture('iproute2/node/nft-node-overlong.json'));
  assert.match(rulesetMismatch(want, parseRuleset(oneFamily)) ?? '', /holds a rule kmcast does not write/);
  const withVerdict = fixture('iproute2/node/nft-node-overlong.json').replace(/("comment": "kmcast-overlong", "expr": \[[^\]]*?\{"counter": \{"packets": \d+, "bytes": \d+\}\})/, '$1, {"drop": null}');
  assert.notEqual(withVerdict, fixture('iproute2/node/nft-node-overlong.json'));
  assert.match(rulesetMismatch(want, parseRuleset(withVerdict)) ?? '', /holds a rule kmcast does not write/);
});
