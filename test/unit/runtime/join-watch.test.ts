import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeMonitors } from '../../../src/kernel/monitor.js';
import { silentLogger } from '../../../src/log.js';
import type { JoinListen } from '../../../src/runtime/join-watch.js';
import { JOIN_EVENT_LINES_PER_100MS, JoinThrottle, JoinWatch, eventNsid } from '../../../src/runtime/join-watch.js';

const NS = (netns: string, nsid?: number): { netns: string; nsid?: number } => ({ netns, ...(nsid === undefined ? {} : { nsid }) });

/** A watch whose owner reads what is due at every wake (`events`) and counts the re-reads of everything. */
function watch<L extends JoinListen>(listen: L, mon: FakeMonitors, opts: { minIntervalMs?: number; resyncMs?: number } = {}): { w: JoinWatch<L>; events: string[]; resyncs: number[]; lost: number[] } {
  const events: string[] = [];
  const resyncs: number[] = [];
  const lost: number[] = [];
  const w: JoinWatch<L> = new JoinWatch({
    listen,
    monitors: mon,
    log: silentLogger(),
    onWake: () => events.push(...w.due()),
    onResync: () => resyncs.push(Date.now()),
    onLost: () => lost.push(Date.now()),
    ...opts,
  });
  return { w, events, resyncs, lost };
}

const until = async (what: string, fn: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
};

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
  const { w, events } = watch({ kind: 'all-nsid' }, mon);
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
  const { w, events } = watch({ kind: 'per-namespace' }, mon);
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

test("namespace (the sidecar's): one `ip -o monitor maddress` in its namespace; IPv4 lines wake its key, paced like the node's", () => {
  const mon = new FakeMonitors();
  const { w, events } = watch({ kind: 'namespace', netns: 'kmcp1', key: 'pod' }, mon);
  w.start();
  assert.equal(w.mode, 'namespace');
  assert.deepEqual(
    mon.started.map((s) => [s.argv.join(' '), s.netns, s.opts.maxLinesPer100ms]),
    [['ip -o monitor maddress', 'kmcp1', JOIN_EVENT_LINES_PER_100MS]],
  );
  assert.deepEqual(w.watched(), ['kmcp1']);
  mon.started[0]!.onLine('4: vx0    link  01:00:5e:01:01:07');
  assert.deepEqual(events, [], 'not an IPv4 line: no wake');
  mon.started[0]!.onLine('4: vx0    inet  239.1.1.7');
  assert.deepEqual(events, ['pod']);
  w.stop();
  assert.equal(mon.started[0]!.stopped, true);
});

test('throttle in the watch: a second event within the interval is due when it ends, by a timer that wakes the owner', async () => {
  const mon = new FakeMonitors();
  const { w, events } = watch({ kind: 'namespace', netns: 'kmcp1', key: 'pod' }, mon, { minIntervalMs: 60 });
  w.start();
  const line = mon.started[0]!.onLine;
  line('4: vx0    inet  239.1.1.7');
  const t0 = Date.now();
  line('4: vx0    inet  239.1.1.8');
  line('4: vx0    inet  239.1.1.9');
  assert.deepEqual(events, ['pod'], 'the burst after the first read waits');
  await until('the folded events are due', () => events.length === 2);
  assert.ok(Date.now() - t0 >= 50, 'not before the interval ended');
  await sleep(80);
  assert.deepEqual(events, ['pod', 'pod'], 'one read for the burst');
  w.stop();
});

test('lost events: counted each time, one re-read of everything per window; the periodic re-read too', async () => {
  const mon = new FakeMonitors();
  const { w, resyncs, lost } = watch({ kind: 'all-nsid' }, mon, { resyncMs: 40 });
  w.start();
  w.sync([NS('kmcp1', 3)]);
  await until('a periodic re-read', () => resyncs.length >= 1);
  const before = resyncs.length;
  const overflow = mon.started[0]!.opts.onOverflow!;
  w.stop(); // no periodic re-reads from here: only what the overflow asks
  const { w: w2, resyncs: r2, lost: l2 } = watch({ kind: 'all-nsid' }, mon);
  w2.sync([NS('kmcp1', 3)]);
  const overflow2 = mon.started[1]!.opts.onOverflow!;
  overflow2();
  overflow2();
  overflow2();
  await until('one re-read', () => r2.length === 1);
  await sleep(30);
  assert.equal(r2.length, 1, 'three overflows at once are one re-read');
  assert.equal(l2.length, 3, 'and each is counted');
  overflow2();
  await sleep(50);
  assert.equal(r2.length, 1, 'the next one waits for the end of the window (2 s)');
  w2.stop();
  assert.ok(before >= 1 && lost.length === 0);
  overflow(); // a stopped watch re-reads nothing
});

test('a listener that exits by itself is started again after a pause; not after stop()', async () => {
  const mon = new FakeMonitors();
  const { w } = watch({ kind: 'per-namespace' }, mon);
  w.sync([NS('kmcp1'), NS('kmcp2')]);
  mon.started[0]!.exit();
  assert.equal(w.processes, 1);
  await until('restarted', () => w.processes === 2, 3000);
  assert.deepEqual(
    mon.started.map((s) => s.netns),
    ['kmcp1', 'kmcp2', 'kmcp1'],
  );
  w.stop();
  mon.started[2]!.exit();
  await sleep(1200);
  assert.equal(mon.started.length, 3, 'stopped: not restarted');
});
