import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CommandError } from '../../../src/errors.js';
import { NftClient } from '../../../src/kernel/nft.js';
import { FakeRunner } from '../../../src/kernel/runner.js';

test('NftClient writes each nft command line, in its namespace, scripts on stdin', async () => {
  const runner = new FakeRunner();
  const nft = new NftClient(runner, 'kmcp1');
  await nft.apply('table ip t {}\n');
  await nft.check('table netdev probe {}\n');
  await nft.listTable('ip', 'kmcast', { json: true });
  await nft.listTable('netdev', 'kmcast');
  await nft.listChain('netdev', 'kmcast-gw', 'lan-in');
  await nft.deleteTable('netdev', 'kmcast');
  await nft.version();
  await nft.listTables();
  assert.deepEqual(runner.commands(), [
    'nft -f -',
    'nft --check -f -',
    'nft -j list table ip kmcast',
    'nft list table netdev kmcast',
    'nft list chain netdev kmcast-gw lan-in',
    'nft delete table netdev kmcast',
    'nft --version',
    'nft list tables',
  ]);
  assert.ok(runner.calls.every((c) => c.netns === 'kmcp1'));
  assert.deepEqual(
    runner.calls.map((c) => c.input),
    ['table ip t {}\n', 'table netdev probe {}\n', undefined, undefined, undefined, undefined, undefined, undefined],
  );
});

test("NftClient.apply throws nft's refusal unless allowFail; reads and deletes never throw on an exit code", async () => {
  const runner = new FakeRunner().on('nft -f -', { code: 1, stderr: 'Error: syntax error\n' }).on('nft', { code: 1, stderr: 'No such file or directory\n' });
  const nft = new NftClient(runner);
  await assert.rejects(nft.apply('bad\n'), (e: unknown) => e instanceof CommandError && /syntax error/.test(e.message));
  assert.equal((await nft.apply('bad\n', { allowFail: true })).code, 1);
  assert.equal((await nft.listTable('ip', 'kmcast', { json: true })).code, 1);
  assert.equal((await nft.deleteTable('ip', 'kmcast')).code, 1);
  assert.equal((await nft.check('x')).code, 1);
  await assert.rejects(nft.listChain('netdev', 'x', 'y'), CommandError);
  assert.ok(
    runner.calls.every((c) => c.netns === undefined),
    'no namespace: our own',
  );
});
