import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { ConfigError } from '../../../src/errors.js';
import { registerDemo } from '../../../src/cli/demo.js';
import { nextSteps } from '../../../src/lab/demo.js';
import { DEMO_NODE_DEVICE, WAIT_SANDBOX, demoNodeAgentArgs } from '../../../src/lab/demo-node.js';

function program(): { cmd: Command; out: string[] } {
  const out: string[] = [];
  const cmd = new Command('kmcast');
  registerDemo(cmd);
  const quiet = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => out.push(s) });
    c.commands.forEach(quiet);
  };
  quiet(cmd);
  return { cmd, out };
}

test('the demo node agents: one domain on VNI 100, the lab key, 1 s heartbeats and DNS re-reads', () => {
  assert.deepEqual(demoNodeAgentArgs('kmcast-peers.default.svc.cluster.local', '/run/k/node.key'), [
    '--service', 'kmcast-peers.default.svc.cluster.local=100', '--key-file', '/run/k/node.key', '--heartbeat-interval', '1000', '--resolve-interval', '1000',
  ]);
  assert.equal(DEMO_NODE_DEVICE, 'kmcvx100');
});

test('kmcast wait runs as the init container does: uid 65532, no capability, no_new_privs', () => {
  assert.deepEqual(WAIT_SANDBOX, ['setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--']);
});

test('demo --help explains the three modes with examples; a bad --mode is exit 2 naming the flag', async () => {
  const { cmd, out } = program();
  await assert.rejects(cmd.parseAsync(['node', 'kmcast', 'demo', '--help']), { code: 'commander.helpDisplayed' });
  const help = out.join('');
  assert.match(help, /Modes:\n {2}sidecar .*\n {2}node {5}one kmcast node agent per node/);
  assert.match(help, /sudo kmcast demo --mode node/);
  assert.match(help, /\n {2}gateway {2}node mode plus an outside LAN/);
  assert.match(help, /sudo kmcast demo --mode gateway/);
  // Checked before root is asked for, so it is the same error as root or not.
  await assert.rejects(program().cmd.parseAsync(['node', 'kmcast', 'demo', '--mode', 'nodes']), (e: unknown) => e instanceof ConfigError && /--mode: invalid value "nodes" \(sidecar, node or gateway\)/.test(e.message));
});

test('demo --mode node prints next commands of node mode, each flag one its command knows', async () => {
  const lines = nextSteps({ id: 'demo', keep: false, sudo: true, mode: 'node' });
  assert.match(lines[0]!, /^ {2}sudo npx kmcast demo --mode node --keep /);
  assert.ok(lines.some((l) => l.includes('sudo ip netns exec kmcdemo-n1 nft list table netdev kmcast-node')));
  assert.ok(lines.some((l) => l.includes('sudo ip netns exec kmcdemo-n1 npx kmcast status --node')));
  assert.ok(lines.some((l) => l.includes('npx kmcast inject --mode node -f app.yaml')));
  assert.match(nextSteps({ id: 'x1', keep: true, sudo: false, mode: 'node' })[0]!, /^ {2}npx kmcast lab down --id x1 /);
  const { cmd, out } = program();
  await assert.rejects(cmd.parseAsync(['node', 'kmcast', 'demo', '--help']), { code: 'commander.helpDisplayed' });
  for (const flag of ['--mode', '--keep']) assert.ok(out.join('').includes(flag), flag);
  assert.deepEqual(nextSteps({ id: 'demo', keep: false, sudo: false }), nextSteps({ id: 'demo', keep: false, sudo: false, mode: 'sidecar' }), 'sidecar is the default');
});
