/**
 * The node agent against fake kernel clients: what it runs goes through the FakeRunner and the
 * FakeMonitors, so its kernel side is checked without root or a lab.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeMonitors } from '../../../src/kernel/monitor.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import { NodeAgent } from '../../../src/node/agent.js';
import { mergeNodeOptions, validateNodeConfig } from '../../../src/node/config.js';
import { deliveryDevices } from '../../../src/node/delivery.js';

test('node agent teardown on fakes: gateway and node tables, allow-list, devices, hop and blackhole, nothing else', async () => {
  const device = { ifindex: 10, ifname: 'kmcvx100', flags: ['UP'], mtu: 1450, linkinfo: { info_kind: 'vxlan', info_data: { id: 100 } } };
  const runner = new FakeRunner()
    .on('ip -j -d link show dev kmcvx100', { stdout: JSON.stringify([device]) })
    .on('ip -j route show table all', { stdout: '[{"type":"blackhole","dst":"192.0.2.1","flags":[]}]' });
  const monitors = new FakeMonitors();
  const config = validateNodeConfig(mergeNodeOptions({ service: ['app=100'], peers: '172.31.2.2', insecureNoKey: true }, {}));
  const agent = new NodeAgent(config, { runner, monitors, log: silentLogger(), allNsid: true });
  await agent.teardown();
  const nft = runner.calls.filter((c) => c.argv[0] === 'nft');
  assert.deepEqual(
    nft.map((c) => `${c.argv.join(' ')} ${c.input ?? ''}`.trim()),
    ['nft -f - table netdev kmcast-gw\ndelete table netdev kmcast-gw', 'nft -f - table netdev kmcast-node\ndelete table netdev kmcast-node', 'nft delete table ip kmcast'],
  );
  assert.ok(
    runner.calls.some((c) => c.argv.join(' ') === 'ip -batch -' && c.input === 'link del kmcvx100\n'),
    'the domain device',
  );
  const d = deliveryDevices(100);
  for (const n of [d.bridge, d.in, d.out]) {
    assert.ok(runner.commands().includes(`ip link del dev ${n}`), `the hop's ${n}`);
  }
  assert.ok(
    runner.calls.some((c) => c.input === 'route del blackhole 192.0.2.1/32\n'),
    'the blackhole route',
  );
  assert.ok(
    runner.calls.every((c) => c.netns === undefined),
    "the node agent acts in its own (the node's) namespace",
  );
  assert.deepEqual(monitors.started, [], 'teardown starts no monitor');
});
