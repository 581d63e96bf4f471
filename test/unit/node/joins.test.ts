import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeMonitors } from '../../../src/iproute2/monitor.js';
import { FakeRunner } from '../../../src/iproute2/runner.js';
import { silentLogger } from '../../../src/log.js';
import { JoinWatch } from '../../../src/node/joins.js';
import type { LocalMember } from '../../../src/node/members.js';
import { fixture } from '../fixtures.js';

const M = (ip: string, netns: string): LocalMember => ({ ip, veth: `kmcv${ip.split('.')[3]}`, vethIndex: 4, netns, podIndex: 2 });

test('read: the routable groups on the pod side of the veth, read in its own namespace', async () => {
  const runner = new FakeRunner().on('ip -j maddr show', (c) => (c.netns === 'kmcp1' ? { stdout: fixture('iproute2/node/maddr-all.json') } : { code: 1, stderr: 'Cannot open network namespace' }));
  const w = new JoinWatch(runner, new FakeMonitors(), silentLogger(), () => undefined);
  assert.deepEqual(await w.read(M('10.244.1.11', 'kmcp1')), ['239.1.1.1'], '224.0.0.x is not announced');
  assert.equal(await w.read(M('10.244.1.12', 'kmcgone')), undefined, 'a pod gone: no answer, no throw');
  assert.deepEqual(runner.calls.map((c) => [c.argv.join(' '), c.netns]), [
    ['ip -j maddr show', 'kmcp1'],
    ['ip -j maddr show', 'kmcgone'],
  ]);
});

test('sync: one ip monitor maddress per member namespace; gone ones stopped, dead ones restarted', () => {
  const mon = new FakeMonitors();
  let events = 0;
  const w = new JoinWatch(new FakeRunner(), mon, silentLogger(), () => events++);
  w.sync(['kmcp1', 'kmcp2', 'kmcp1']);
  assert.deepEqual(mon.started.map((s) => [s.argv.join(' '), s.netns]), [
    ['ip monitor maddress', 'kmcp1'],
    ['ip monitor maddress', 'kmcp2'],
  ]);
  mon.started[1]!.onLine('3: eth0    inet 239.1.1.1');
  assert.equal(events, 1);
  w.sync(['kmcp1', 'kmcp2']);
  assert.equal(mon.started.length, 2, 'running monitors are kept');
  mon.started[0]!.stopped = true; // kmcp1's process exited
  w.sync(['kmcp1']);
  assert.equal(mon.started[1]!.stopped, true, 'kmcp2 is no member namespace any more');
  assert.deepEqual(mon.started.slice(2).map((s) => s.netns), ['kmcp1'], 'the dead one restarted');
  assert.deepEqual(w.watched(), ['kmcp1']);
  w.stop();
  assert.ok(mon.started.every((s) => s.stopped));
  assert.deepEqual(w.watched(), []);
});
