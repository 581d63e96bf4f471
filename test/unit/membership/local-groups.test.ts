import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IP_MONITOR, IpClient } from '../../../src/kernel/ip.js';
import { FakeMonitors } from '../../../src/kernel/monitor.js';
import { parseIpv4MaddrUsers } from '../../../src/kernel/parse.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import { appGroupsOnOverlay, LocalGroupsWatcher } from '../../../src/membership/local-groups.js';
import { fixture } from '../fixtures.js';

test('maddr join counts: "users" when more than one socket joined, 1 otherwise', () => {
  assert.deepEqual(
    [...parseIpv4MaddrUsers(fixture('iproute2/maddr-users.json'))],
    [
      ['239.5.5.7', 1],
      ['239.5.5.6', 2],
      ['224.0.0.1', 1],
    ],
  );
});

test("apps' groups on vx0: the agent's own joins (for eth0 groups) are subtracted, 224.0.0.1 is never one", () => {
  const users = parseIpv4MaddrUsers(fixture('iproute2/maddr-users.json'));
  // The agent joined 239.5.5.6 for an eth0 app and an app joined it on vx0 too: still an app group.
  assert.deepEqual(appGroupsOnOverlay(users, new Set(['239.5.5.6'])), ['239.5.5.6', '239.5.5.7']);
  // Only the agent holds 239.5.5.7 on vx0: after the eth0 app leaves, it is not announced.
  assert.deepEqual(appGroupsOnOverlay(users, new Set(['239.5.5.6', '239.5.5.7'])), ['239.5.5.6']);
  assert.deepEqual(appGroupsOnOverlay(new Map([['224.0.0.1', 1]]), new Set()), []);
});

test('the join watcher streams `ip -o monitor maddress` in its namespace through Monitors and re-reads on a join', async () => {
  let joined = false;
  const maddr = (groups: string[]) => JSON.stringify([{ ifindex: 4, ifname: 'vx0', maddr: groups.map((address) => ({ family: 'inet', address })) }]);
  const runner = new FakeRunner().on('ip -j maddr show dev vx0', () => ({ stdout: maddr(joined ? ['224.0.0.1', '239.1.1.7'] : ['224.0.0.1']) }));
  const monitors = new FakeMonitors();
  const watcher = new LocalGroupsWatcher(new IpClient(runner, 'kmcp1'), monitors, 'vx0', silentLogger(), 60_000);
  const changes: string[][] = [];
  watcher.on('change', (g) => changes.push(g));
  await watcher.start();
  try {
    assert.equal(monitors.started.length, 1);
    assert.deepEqual(monitors.started[0]!.argv, IP_MONITOR.maddressOneline);
    assert.equal(monitors.started[0]!.netns, 'kmcp1');
    assert.deepEqual(watcher.groups(), []);
    joined = true;
    monitors.started[0]!.onLine('4: vx0    link  01:00:5e:01:01:07'); // not an IPv4 line: no read
    assert.equal(runner.calls.length, 1);
    monitors.started[0]!.onLine('4: vx0    inet  239.1.1.7');
    await watcher.refresh();
    assert.deepEqual(changes, [['239.1.1.7']]);
  } finally {
    watcher.stop();
  }
  assert.equal(monitors.started[0]!.stopped, true, 'stop() stops the monitor');
  monitors.started[0]!.exit();
  assert.equal(monitors.started.length, 1, 'an exit after stop() is not restarted');
});
