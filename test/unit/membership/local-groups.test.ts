import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IP_MONITOR, IpClient } from '../../../src/kernel/ip.js';
import { FakeMonitors } from '../../../src/kernel/monitor.js';
import { parseIpv4MaddrUsers, parseMaddrUsers } from '../../../src/kernel/parse.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import { announcedGroups, appGroupsOnOverlay, canonicalUsers, isAppGroup, LocalGroupsWatcher } from '../../../src/membership/local-groups.js';
import type { OverlayJoiner } from '../../../src/membership/overlay-joins.js';
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

test("IPv6 groups on eth0 (recorded): the apps' ff05::1:3 and ff02::fb; never all-nodes, solicited-node or interface-local", () => {
  const users = parseMaddrUsers(fixture('iproute2/maddr-eth0-ipv6.json'));
  assert.ok(users.has('ff02::1:ff00:12'), 'the fixture holds the solicited-node groups of both eth0 addresses');
  assert.deepEqual(announcedGroups(users.keys()), ['239.1.2.3', 'ff02::fb', 'ff05::1:3']);
  for (const g of ['ff01::1', 'ff02::1', 'ff02::2', 'ff05::2', 'ff02::1:ffa4:f1e4', 'ff01::fb', 'ff00::1:3', 'ff0f::1', '224.0.0.1']) assert.equal(isAppGroup(g), false, g);
  for (const g of ['ff02::fb', 'ff02::c', 'ff03::1', 'ff15::1:3', 'ff0e::db8', '224.0.0.251', '239.1.1.1']) assert.equal(isAppGroup(g), true, g);
  // Any spelling is one group.
  assert.deepEqual(announcedGroups(['FF05:0:0:0:0:0:1:3', 'ff05::1:3']), ['ff05::1:3']);
  assert.deepEqual(
    [
      ...canonicalUsers(
        new Map([
          ['FF05::1:3', 1],
          ['ff05::1:3', 2],
        ]),
      ),
    ],
    [['ff05::1:3', 3]],
  );
});

test('the watcher reads both families of eth0 and vx0 and holds eth0 IPv6 groups on vx0', async () => {
  const vx0 = (groups: Array<[string, string]>) => JSON.stringify([{ ifindex: 3, ifname: 'vx0', maddr: groups.map(([family, address]) => ({ family, address })) }]);
  const held = new Set<string>();
  const joiner = {
    groups: () => [...held].sort(),
    set: async (want: readonly string[]) => {
      const same = want.length === held.size && want.every((g) => held.has(g));
      held.clear();
      for (const g of want) held.add(g);
      return !same;
    },
    reset: () => held.clear(),
    close: () => held.clear(),
  } as unknown as OverlayJoiner;
  const runner = new FakeRunner().on('ip -j maddr show dev eth0', { stdout: fixture('iproute2/maddr-eth0-ipv6.json') }).on('ip -j maddr show dev vx0', () => ({
    stdout: vx0([['inet', '224.0.0.1'], ['inet6', 'ff02::1'], ['inet6', 'ff01::1'], ...[...held].map((g): [string, string] => [g.includes(':') ? 'inet6' : 'inet', g]), ['inet6', 'ff15::7']]),
  }));
  const w = new LocalGroupsWatcher(new IpClient(runner, 'kmcx'), new FakeMonitors(), 'vx0', silentLogger(), 60_000, { underlay: 'eth0', joiner });
  await w.start();
  assert.deepEqual([...held].sort(), ['239.1.2.3', 'ff02::fb', 'ff05::1:3'].sort(), 'eth0 groups of both families held on vx0');
  w.stop();
  assert.deepEqual(w.groups(), ['239.1.2.3', 'ff02::fb', 'ff05::1:3', 'ff15::7']);
  assert.deepEqual(w.byInterface(), { vx0: ['ff15::7'], eth0: ['239.1.2.3', 'ff02::fb', 'ff05::1:3'] });
});
