import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeMonitors } from '../../../src/kernel/monitor.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import { JoinThrottle, JoinWatch, MemberJoinReads, eventNsid } from '../../../src/node/joins.js';
import type { LocalMember } from '../../../src/node/members.js';
import { fixture } from '../fixtures.js';

const M = (ip: string, netns: string): LocalMember => ({ ip, veth: `kmcv${ip.split('.')[3]}`, vethIndex: 4, netns, podIndex: 2 });
const NS = (netns: string, nsid?: number): { netns: string; nsid?: number } => ({ netns, ...(nsid === undefined ? {} : { nsid }) });

test('read: the routable groups on the pod side of the veth, read in its own namespace', async () => {
  const runner = new FakeRunner().on('ip -j maddr show', (c) => (c.netns === 'kmcp1' ? { stdout: fixture('iproute2/node/maddr-all.json') } : { code: 1, stderr: 'Cannot open network namespace' }));
  const w = new JoinWatch(runner, new FakeMonitors(), silentLogger(), () => undefined, { allNsid: true });
  assert.deepEqual(await w.read(M('10.244.1.11', 'kmcp1')), ['239.1.1.1'], '224.0.0.x is not announced');
  assert.equal(await w.read(M('10.244.1.12', 'kmcgone')), undefined, 'a pod gone: no answer, no throw');
  assert.deepEqual(
    runner.calls.map((c) => [c.argv.join(' '), c.netns]),
    [
      ['ip -j maddr show', 'kmcp1'],
      ['ip -j maddr show', 'kmcgone'],
    ],
  );
});

test("eventNsid: the id an all-nsid event line starts with; none for the node's own or continuation lines", () => {
  // As `ip monitor maddress all-nsid` prints them (iproute2 6.x).
  assert.equal(eventNsid('[nsid 0]2: kmcva    inet mcast 239.1.2.3 scope global '), 0);
  assert.equal(eventNsid('[nsid 17]Deleted 2: kmcva    inet mcast 239.1.2.3 scope global '), 17);
  assert.equal(eventNsid('       valid_lft forever preferred_lft forever'), undefined);
  assert.equal(eventNsid('2: eth0    inet mcast 224.0.0.251 scope global '), undefined);
  assert.equal(eventNsid('[nsid x]2: eth0'), undefined);
});

test('all-nsid: one listener for every member; an event wakes only its own namespace, others cost nothing', () => {
  const mon = new FakeMonitors();
  const events: string[] = [];
  const w = new JoinWatch(new FakeRunner(), mon, silentLogger(), (ns) => events.push(ns), { allNsid: true });
  assert.equal(w.mode, 'all-nsid');
  w.sync([NS('kmcp1', 3), NS('kmcp2', 5), NS('kmcp3')]);
  w.sync([NS('kmcp1', 3), NS('kmcp2', 5)]);
  assert.deepEqual(
    mon.started.map((s) => [s.argv.join(' '), s.netns]),
    [['ip monitor maddress all-nsid', undefined]],
    "one process, in the node's namespace, kept across syncs",
  );
  assert.equal(w.processes, 1);
  const on = mon.started[0]!.onLine;
  on('[nsid 5]2: kmcva    inet mcast 239.1.2.3 scope global ');
  on('       valid_lft forever preferred_lft forever');
  on('[nsid 9]2: kmcva    inet mcast 239.1.2.3 scope global '); // a pod that is no member
  on('3: kmcbr0    inet mcast 224.0.0.1'); // the node's own namespace
  on('[nsid 3]Deleted 2: kmcva    inet mcast 239.1.2.3 scope global ');
  assert.deepEqual(events, ['kmcp2', 'kmcp1']);
  w.sync([NS('kmcp1', 3)]);
  on('[nsid 5]2: kmcva    inet mcast 239.1.2.4 scope global ');
  assert.deepEqual(events, ['kmcp2', 'kmcp1'], 'a namespace no longer a member is not woken');
  mon.started[0]!.stopped = true; // the listener exited
  assert.equal(w.processes, 0);
  w.sync([NS('kmcp1', 3)]);
  assert.equal(mon.started.length, 2, 'restarted at the next sync');
  w.stop();
  assert.ok(mon.started.every((s) => s.stopped));
});

test('per-namespace (no CAP_NET_BROADCAST): one ip monitor maddress per member namespace; gone ones stopped, dead ones restarted', () => {
  const mon = new FakeMonitors();
  const events: string[] = [];
  const w = new JoinWatch(new FakeRunner(), mon, silentLogger(), (ns) => events.push(ns), { allNsid: false });
  assert.equal(w.mode, 'per-namespace');
  w.sync([NS('kmcp1'), NS('kmcp2'), NS('kmcp1')]);
  assert.deepEqual(
    mon.started.map((s) => [s.argv.join(' '), s.netns]),
    [
      ['ip monitor maddress', 'kmcp1'],
      ['ip monitor maddress', 'kmcp2'],
    ],
  );
  mon.started[1]!.onLine('3: eth0    inet 239.1.1.1');
  assert.deepEqual(events, ['kmcp2']);
  w.sync([NS('kmcp1'), NS('kmcp2')]);
  assert.equal(mon.started.length, 2, 'running monitors are kept');
  mon.started[0]!.stopped = true; // kmcp1's process exited
  w.sync([NS('kmcp1')]);
  assert.equal(mon.started[1]!.stopped, true, 'kmcp2 is no member namespace any more');
  assert.deepEqual(
    mon.started.slice(2).map((s) => s.netns),
    ['kmcp1'],
    'the dead one restarted',
  );
  assert.deepEqual(w.watched(), ['kmcp1']);
  assert.equal(w.processes, 1);
  w.stop();
  assert.ok(mon.started.every((s) => s.stopped));
  assert.deepEqual(w.watched(), []);
});

test('JoinThrottle: a quiet namespace is read at once, a busy one at most once per interval', () => {
  const t = new JoinThrottle(100);
  t.mark('a');
  assert.deepEqual(t.take(1000), { due: ['a'], retryAt: undefined }, 'the first event is read at once');
  t.mark('a');
  t.mark('a');
  t.mark('b');
  assert.deepEqual(t.take(1030), { due: ['b'], retryAt: 1100 }, 'a is folded until its interval ends; b is quiet');
  assert.ok(t.pending);
  assert.deepEqual(t.take(1099), { due: [], retryAt: 1100 });
  assert.deepEqual(t.take(1100), { due: ['a'], retryAt: undefined }, 'one read for the events of the interval');
  assert.equal(t.pending, false);
  // A loop of events: one read per interval, whatever their number.
  let reads = 0;
  for (let now = 2000; now < 3000; now += 1) {
    t.mark('a');
    reads += t.take(now).due.length;
  }
  assert.equal(reads, 10);
  t.mark('gone');
  t.retain((ns) => ns !== 'gone');
  assert.deepEqual(t.take(5000).due, ['a'], 'a namespace no longer a member is dropped');
});

test('MemberJoinReads: overlapping reads of one member keep the newer one, whatever order they end in', async () => {
  const answers: Array<(g: string[] | undefined) => void> = [];
  const reads = new MemberJoinReads(async () => await new Promise<string[] | undefined>((r) => answers.push(r)));
  const m = M('10.244.1.11', 'kmcp1');
  const d = { label: 'node:100/app', local: new Map([[m.ip, m]]), groups: new Map<string, string[]>() };
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
  const reads = new MemberJoinReads(async () => await new Promise<string[] | undefined>((r) => answers.push(r)));
  const m = M('10.244.1.11', 'kmcp1');
  const d = { label: 'node:100/app', local: new Map([[m.ip, m]]), groups: new Map<string, string[]>() };
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
