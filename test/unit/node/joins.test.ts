import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeMonitors } from '../../../src/kernel/monitor.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import type { MemberRead } from '../../../src/node/joins.js';
import { MemberJoinReads, MemberJoins, readMemberJoins } from '../../../src/node/joins.js';
import type { LocalMember } from '../../../src/node/members.js';
import { fixture } from '../fixtures.js';

const M = (ip: string, netns: string): LocalMember => ({ ip, veth: `kmcv${ip.split('.')[3]}`, vethIndex: 4, netns, podIndex: 2 });

test('read: the routable groups of both families and the global IPv6 addresses of the pod side of the veth, one process in its own namespace', async () => {
  // Recorded: a pod's eth0 (ifindex 3) joined 239.1.1.1, 224.0.0.251, ff05::1:3, ff0e::1 and ff02::fb.
  const runner = new FakeRunner().on('ip -j -batch -', (c) =>
    c.netns === 'kmcp1' && c.input === 'maddr show\naddr show\n' ? { stdout: fixture('iproute2/node/groups-and-addrs.txt') } : { code: 1, stderr: 'Cannot open network namespace' },
  );
  const m = { ...M('10.244.1.11', 'kmcp1'), podIndex: 3 };
  assert.deepEqual(
    await readMemberJoins(runner, silentLogger(), m),
    { groups: ['239.1.1.1', 'ff05::1:3', 'ff0e::1'], ipv6: ['fd00:10:244:1::b'] },
    'link-local groups (224.0.0.x, ff02::) are not announced; link-local addresses are not listed',
  );
  assert.equal(await readMemberJoins(runner, silentLogger(), M('10.244.1.12', 'kmcgone')), undefined, 'a pod gone: no answer, no throw');
  assert.deepEqual(
    runner.calls.map((c) => [c.argv.join(' '), c.netns]),
    [
      ['ip -j -batch -', 'kmcp1'],
      ['ip -j -batch -', 'kmcgone'],
    ],
  );
});

test('MemberJoinReads: overlapping reads of one member keep the newer one, whatever order they end in', async () => {
  const answers: Array<(g: string[] | undefined) => void> = [];
  const reads = new MemberJoinReads(async () => await new Promise<MemberRead | undefined>((r) => answers.push((g) => r(g && { groups: g, ipv6: [] }))));
  const m = M('10.244.1.11', 'kmcp1');
  const d = { label: 'node:100/app', local: new Map([[m.ip, m]]), groups: new Map<string, string[]>(), ipv6: new Map<string, string[]>() };
  const old = reads.readInto(d, m); // a full pass's read, started first
  const fresh = reads.readInto(d, m); // a joins pass's read after an event
  answers[1]!(['239.1.1.1', '239.1.1.2']);
  assert.equal(await fresh, true);
  answers[0]!(['239.1.1.1']); // the older read ends last, with what was joined before the event
  assert.equal(await old, false, 'not kept');
  assert.deepEqual(d.groups.get(m.ip), ['239.1.1.1', '239.1.1.2'], 'the join is not lost');
  const third = reads.readInto(d, m);
  answers[2]!([]);
  assert.equal(await third, true, 'a later read (a leave) is kept');
  assert.deepEqual(d.groups.get(m.ip), []);
});

test('MemberJoinReads: a member gone or re-created while its read ran keeps nothing from it', async () => {
  const answers: Array<(g: string[] | undefined) => void> = [];
  const reads = new MemberJoinReads(async () => await new Promise<MemberRead | undefined>((r) => answers.push((g) => r(g && { groups: g, ipv6: [] }))));
  const m = M('10.244.1.11', 'kmcp1');
  const d = { label: 'node:100/app', local: new Map([[m.ip, m]]), groups: new Map<string, string[]>(), ipv6: new Map<string, string[]>() };
  const gone = reads.readInto(d, m);
  d.local = new Map(); // a full pass found the pod gone
  answers[0]!(['239.1.1.1']);
  assert.equal(await gone, false);
  assert.equal(d.groups.has(m.ip), false);
  const again = reads.readInto(d, m);
  d.local = new Map([[m.ip, M('10.244.1.11', 'kmcp9')]]); // the same IP, a new pod
  answers[1]!(['239.1.1.1']);
  assert.equal(await again, false);
  assert.equal(d.groups.has(m.ip), false, "the old pod's groups are not the new pod's");
  const failed = reads.readInto(d, d.local.get(m.ip)!);
  answers[2]!(undefined); // could not be read
  assert.equal(await failed, false);
  reads.retain(() => false);
});

test('MemberJoins: an event reads only its namespace; a full pass reads only members not read yet; every read counted', async () => {
  const maddr = (g: string): string => JSON.stringify([{ ifindex: 2, ifname: 'eth0', maddr: [{ family: 'inet', address: g }] }]);
  // One `ip -j -batch -` per read: the groups, then the addresses (none global here).
  const runner = new FakeRunner().on('ip -j -batch -', (c) => ({ stdout: `${maddr(c.netns === 'kmcp1' ? '239.1.1.1' : '239.2.2.2')}\n[]\n` }));
  const monitors = new FakeMonitors();
  const woken: string[] = [];
  const counted: string[] = [];
  const joins = new MemberJoins({
    runner,
    monitors,
    log: silentLogger(),
    allNsid: true,
    onEvents: () => woken.push('joins'),
    onResync: () => woken.push('joins-all'),
    resyncMs: 60_000,
    counted: { read: (cause) => counted.push(cause), lost: () => counted.push('lost') },
  });
  const m1 = { ...M('10.244.1.11', 'kmcp1'), nsid: 3 };
  const m2 = { ...M('10.244.1.12', 'kmcp2'), nsid: 5 };
  const d = { label: 'node:100/app', local: new Map([[m1.ip, m1]]), groups: new Map<string, string[]>(), ipv6: new Map<string, string[]>() };
  const e = { label: 'node:200/other', local: new Map([[m2.ip, m2]]), groups: new Map<string, string[]>(), ipv6: new Map<string, string[]>() };
  joins.sync([d, e]);
  await joins.readNew([d, e]);
  assert.deepEqual(
    [...d.groups, ...e.groups],
    [
      ['10.244.1.11', ['239.1.1.1']],
      ['10.244.1.12', ['239.2.2.2']],
    ],
  );
  await joins.readNew([d, e]);
  assert.equal(runner.calls.length, 2, 'members read already are not read again by a full pass');
  await joins.readDue([d, e]);
  assert.equal(runner.calls.length, 2, 'baseline: no event, nothing due');
  monitors.started[0]!.onLine('[nsid 5]2: eth0    inet mcast 239.2.2.2 scope global ');
  assert.deepEqual(woken, ['joins']);
  await joins.readDue([d, e]);
  assert.deepEqual(
    runner.calls.slice(2).map((c) => c.netns),
    ['kmcp2'],
    "only the namespace with the event; the other domain's member is not read",
  );
  await joins.readAll([d, e]);
  assert.equal(runner.calls.length, 5);
  monitors.started[0]!.opts.onOverflow!();
  assert.deepEqual(counted, ['resync', 'resync', 'event', 'resync', 'resync', 'lost']);
  assert.deepEqual(joins.status(), { mode: 'all-nsid', processes: 1, reads: 5 });
  joins.stop();
  assert.equal(monitors.started[0]!.stopped, true);
});
