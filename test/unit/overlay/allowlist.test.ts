import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AllowList, allowListDrops, allowListScript, parseAllowList } from '../../../src/overlay/allowlist.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { CapabilityError, KmcastError } from '../../../src/errors.js';

const listed = (peers: string[], rules = ['kmcast-vxlan']) =>
  JSON.stringify({
    nftables: [
      { set: { family: 'ip', name: 'peers', table: 'kmcast', type: 'ipv4_addr', ...(peers.length ? { elem: peers } : {}) } },
      ...rules.map((comment) => ({ rule: { comment, expr: [{ counter: { packets: 3, bytes: 9 } }, { drop: null }] } })),
    ],
  });

test('the script replaces the table atomically and filters VXLAN (and control without a key)', () => {
  const s = allowListScript({ vxlanPort: 7471, controlPort: 7470, peers: ['10.0.0.9', '10.0.0.10', '10.0.0.9'] });
  assert.match(s, /^table ip kmcast\ndelete table ip kmcast\ntable ip kmcast \{/);
  assert.match(s, /elements = \{ 10\.0\.0\.9, 10\.0\.0\.10 \}/);
  assert.match(s, /udp dport 7471 ip saddr != @peers counter drop comment "kmcast-vxlan"/);
  assert.match(s, /udp dport 7470 ip saddr != @peers counter drop comment "kmcast-control"/);
  const keyed = allowListScript({ vxlanPort: 7471, controlPort: undefined, peers: [] });
  assert.doesNotMatch(keyed, /7470|elements/, 'an empty set has no elements clause (nft rejects "{ }")');
});

/** A runner whose `nft -j list` answers come from `answers` in turn (the last one repeats). */
function nftRunner(answers: { code?: number; stdout?: string }[]): FakeRunner {
  let i = 0;
  return new FakeRunner().on('nft -j list', () => answers[Math.min(i++, answers.length - 1)]!);
}

test('first install: the whole table, then read back', async () => {
  const r = nftRunner([{ code: 1 }, { stdout: listed(['10.0.0.2']) }]);
  const state = await new AllowList(r, 'kmcx').apply({ vxlanPort: 7471, controlPort: undefined, peers: ['10.0.0.2'] });
  assert.deepEqual(state, { peers: ['10.0.0.2'], dropped: { 'kmcast-vxlan': 3 } });
  assert.deepEqual(r.commands(), ['nft -j list table ip kmcast', 'nft -f -', 'nft -j list table ip kmcast']);
  assert.match(r.calls[1]?.input ?? '', /^table ip kmcast\ndelete table ip kmcast\n/);
  assert.ok(r.calls.every((c) => c.netns === 'kmcx'));
});

test('a peer change swaps only the set, keeping the drop counters; no change writes nothing', async () => {
  const r = nftRunner([{ stdout: listed(['10.0.0.2']) }, { stdout: listed(['10.0.0.3']) }]);
  await new AllowList(r).apply({ vxlanPort: 7471, controlPort: undefined, peers: ['10.0.0.3'] });
  assert.equal(r.calls[1]?.input, 'flush set ip kmcast peers\nadd element ip kmcast peers { 10.0.0.3 }\n');
  const same = nftRunner([{ stdout: listed(['10.0.0.2']) }]);
  await new AllowList(same).apply({ vxlanPort: 7471, controlPort: undefined, peers: ['10.0.0.2'] });
  assert.deepEqual(same.commands(), ['nft -j list table ip kmcast']);
  // A table without the control rule that is now wanted is replaced whole.
  const more = nftRunner([{ stdout: listed(['10.0.0.2']) }, { stdout: listed(['10.0.0.2'], ['kmcast-vxlan', 'kmcast-control']) }]);
  await new AllowList(more).apply({ vxlanPort: 7471, controlPort: 7470, peers: ['10.0.0.2'] });
  assert.match(more.calls[1]?.input ?? '', /^table ip kmcast\n/);
});

test('fails closed when the read-back disagrees with what was installed', async () => {
  const stale = nftRunner([{ stdout: listed([]) }]);
  await assert.rejects(new AllowList(stale).apply({ vxlanPort: 7471, controlPort: undefined, peers: ['10.0.0.2'] }), KmcastError);
  const noControl = nftRunner([{ code: 1 }, { stdout: listed(['10.0.0.2']) }]);
  await assert.rejects(new AllowList(noControl).apply({ vxlanPort: 7471, controlPort: 7470, peers: ['10.0.0.2'] }), /verify admission allow-list/);
});

test('a missing nft binary is a capability error that names the way out', async () => {
  const r = new FakeRunner().on('nft -f', { code: 255, stderr: 'exec of "nft" failed: No such file or directory' });
  await assert.rejects(new AllowList(r).apply({ vxlanPort: 7471, controlPort: undefined, peers: [] }), (e: unknown) => {
    return e instanceof CapabilityError && /install nftables.*--insecure-no-allowlist/.test(e.message);
  });
});

test('parseAllowList tolerates an empty set', () => {
  assert.deepEqual(parseAllowList(listed([], ['kmcast-vxlan', 'kmcast-control'])), { peers: [], dropped: { 'kmcast-vxlan': 3, 'kmcast-control': 3 } });
});

test('node guard: the overlay and control ports only from the underlay (and lo), in prerouting', () => {
  const s = allowListScript({ vxlanPort: 7472, controlPort: undefined, peers: [], guard: { underlay: 'eth9', ports: [7473, 7472] } });
  assert.match(
    s,
    /chain prerouting \{\n\s+type filter hook prerouting priority -300; policy accept;\n\s+iifname != \{ "eth9", "lo" \} udp dport \{ 7472, 7473 \} counter drop comment "kmcast-not-underlay"/,
  );
  assert.doesNotMatch(allowListScript({ vxlanPort: 7472, controlPort: undefined, peers: [] }), /prerouting/, 'the sidecar has no guard');
});

test('node guard: a guard on another interface is replaced whole; drops are named by reason', async () => {
  const guarded = (underlay: string): string =>
    JSON.stringify({
      nftables: [
        { set: { name: 'peers', elem: ['10.0.0.2'] } },
        { rule: { comment: 'kmcast-vxlan', expr: [{ counter: { packets: 1 } }, { drop: null }] } },
        {
          rule: {
            comment: 'kmcast-not-underlay',
            expr: [
              { match: { op: '!=', left: { meta: { key: 'iifname' } }, right: { set: [underlay, 'lo'] } } },
              { match: { op: '==', left: { payload: { field: 'dport' } }, right: { set: [7472, 7473] } } },
              { counter: { packets: 4 } },
              { drop: null },
            ],
          },
        },
      ],
    });
  const spec = { vxlanPort: 7472, controlPort: undefined, peers: ['10.0.0.2'], guard: { underlay: 'eth0', ports: [7472, 7473] } };
  const same = nftRunner([{ stdout: guarded('eth0') }]);
  const state = await new AllowList(same).apply(spec);
  assert.deepEqual(same.commands(), ['nft -j list table ip kmcast'], 'a matching guard writes nothing');
  assert.deepEqual(allowListDrops(state.dropped), { not_peer: 1, not_underlay: 4 });
  const moved = nftRunner([{ stdout: guarded('eth1') }, { stdout: guarded('eth0') }]);
  await new AllowList(moved).apply(spec);
  assert.match(moved.calls[1]?.input ?? '', /^table ip kmcast\ndelete table ip kmcast\n[\s\S]*"eth0", "lo"/);
  const missing = nftRunner([{ stdout: listed(['10.0.0.2']) }]);
  await assert.rejects(new AllowList(missing).apply(spec), /verify admission allow-list/, 'a guard missing after apply fails closed');
});

test('an IPv6 underlay: the same table in the ip6 family, peers as IPv6 addresses, read and removed there', async () => {
  const s = allowListScript({ vxlanPort: 7472, controlPort: 7473, peers: ['fd00:172:31:3::2', 'fd00:172:31:1::2'], family: 'ip6' });
  assert.match(s, /^table ip6 kmcast\ndelete table ip6 kmcast\ntable ip6 kmcast \{/);
  assert.match(s, /set peers \{ type ipv6_addr; elements = \{ fd00:172:31:1::2, fd00:172:31:3::2 \} \}/);
  assert.match(s, /udp dport 7472 ip6 saddr != @peers counter drop comment "kmcast-vxlan"/);
  assert.match(s, /udp dport 7473 ip6 saddr != @peers counter drop comment "kmcast-control"/);
  const r = nftRunner([{ code: 1 }, { stdout: listed(['fd00:172:31:1::2']) }]);
  await new AllowList(r, undefined, 'ip6').apply({ vxlanPort: 7472, controlPort: undefined, peers: ['fd00:172:31:1::2'] });
  assert.deepEqual(r.commands(), ['nft -j list table ip6 kmcast', 'nft -f -', 'nft -j list table ip6 kmcast']);
  assert.match(r.calls[1]?.input ?? '', /^table ip6 kmcast\n/);
  const rm = new FakeRunner().on('nft delete table ip6 kmcast', { stdout: '' });
  await new AllowList(rm, undefined, 'ip6').remove();
  assert.deepEqual(rm.commands(), ['nft delete table ip6 kmcast']);
});
