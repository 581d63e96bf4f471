import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerNode } from '../../../src/cli/node.js';
import { parseYamlDocs } from '../../../src/manifests/yamlio.js';

function help(sub: string): string {
  const out: string[] = [];
  const cmd = new Command('kmcast');
  registerNode(cmd);
  const quiet = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => out.push(s) });
    c.commands.forEach(quiet);
  };
  quiet(cmd);
  assert.throws(() => cmd.parse(['node', 'kmcast', sub, '--help']), { code: 'commander.helpDisplayed' });
  return out.join('');
}

test('kmcast node/gateway --help name the peers Service that deploy/node creates, and how agents find each other', () => {
  const svc = parseYamlDocs(readFileSync(new URL('../../../../deploy/node/service.yaml', import.meta.url), 'utf8'), 'service.yaml')[0]!.doc.toJS() as { metadata: { name: string; namespace: string } };
  const ds = readFileSync(new URL('../../../../deploy/node/daemonset.yaml', import.meta.url), 'utf8');
  const fqdn = `${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`;
  assert.ok(ds.includes(`--peers-service=${fqdn}`), `baseline: the DaemonSet uses ${fqdn}`);
  for (const sub of ['node', 'gateway']) {
    const text = help(sub);
    assert.ok(text.includes(`--peers-service ${fqdn}`), `${sub} --help: ${text}`);
    assert.doesNotMatch(text, /kmcast-system/, `${sub} --help names the webhook's namespace`);
  }
  const node = help('node');
  assert.match(node, /--listed-peer-expiry <n>/);
  assert.match(node, /Finding the other nodes: --peers-service .*\n.*--peers; control messages on UDP --control-port \(7473\)/);
});
