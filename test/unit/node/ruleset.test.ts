import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpClient } from '../../../src/kernel/ip.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import { NodeMetrics } from '../../../src/node/metrics.js';
import { desiredChains, parseRuleset, renderRuleset } from '../../../src/node/nft.js';
import { NodeRuleset, fingerprintDevices, installReason } from '../../../src/node/ruleset.js';
import { fixture } from '../fixtures.js';

const WANT = desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv1', 'kmcv2'] }]);
const RECORDED = fixture('iproute2/node/nft-node.json');
const LIST = 'nft -j list table netdev kmcast-node';
const link = (name: string, ifindex: number): string => JSON.stringify([{ ifindex, ifname: name, flags: ['UP'], linkinfo: { info_kind: 'veth' } }]);

/** A kernel with kmcv1, kmcv2, kmcvx100 and the delivery hop (ifindexes from `index`) and a table that is `table()`. */
function kernel(
  table: () => string | undefined,
  index: Map<string, number> = new Map([
    ['kmcdb100', 8],
    ['kmcdi100', 6],
    ['kmcdr100', 7],
    ['kmcv1', 4],
    ['kmcv2', 5],
    ['kmcvx100', 9],
  ]),
): FakeRunner {
  return new FakeRunner()
    .on('ip -j -d link show', () => ({ stdout: JSON.stringify([...index].filter(([, i]) => i > 0).flatMap(([name, i]) => JSON.parse(link(name, i)) as unknown[])) }))
    .on(LIST, () => {
      const t = table();
      return t === undefined ? { code: 1, stderr: 'Error: No such file or directory' } : { stdout: t };
    });
}

function ruleset(runner: FakeRunner, retries: { n: number } = { n: 0 }): NodeRuleset {
  return new NodeRuleset({ ip: new IpClient(runner), log: silentLogger(), metrics: new NodeMetrics(), retrySoon: () => retries.n++ });
}

test('installReason: missing, differing, first adoption, recreated device; else nothing', () => {
  const have = parseRuleset(RECORDED);
  const base = { want: WANT, have, fingerprint: 'a', installed: 'a', rebind: false };
  assert.equal(installReason(base), undefined);
  assert.equal(installReason({ ...base, have: undefined }), 'table missing');
  assert.match(installReason({ ...base, want: desiredChains([{ vni: 100, device: 'kmcvx100', members: ['kmcv1'] }]) }) ?? '', /unexpected chain cap-kmcv2/);
  assert.equal(installReason({ ...base, installed: undefined }), 'adopting at start');
  assert.equal(installReason({ ...base, fingerprint: 'b' }), 'a device was recreated');
  assert.equal(installReason({ ...base, rebind: true }), 'a device was recreated');
  assert.deepEqual(fingerprintDevices(WANT), ['kmcdb100', 'kmcdi100', 'kmcdr100', 'kmcv1', 'kmcv2', 'kmcvx100']);
});

test('first sync: fingerprint (one read of every link), read, one nft -f transaction, read back, fingerprint again', async () => {
  let table: string | undefined = RECORDED; // a previous agent's table: replaced once at start
  const runner = kernel(() => table);
  const r = ruleset(runner);
  await r.sync(WANT);
  const links = ['ip -j -d link show'];
  assert.deepEqual(runner.commands(), [...links, LIST, 'nft -f -', LIST, ...links]);
  assert.equal(runner.calls[2]!.input, renderRuleset(WANT));
  assert.ok(r.isInstalled);
  assert.equal(r.chain('cap-kmcv1')?.fwd, 'kmcvx100');
  // Nothing changed: read only, no transaction.
  runner.calls.length = 0;
  await r.sync(WANT);
  assert.deepEqual(runner.commands(), [...links, LIST]);
  table = undefined;
  assert.equal(await r.read(), undefined);
});

test('a recreated device (new ifindex, same name) or a reconciler rebind re-installs', async () => {
  const index = new Map([
    ['kmcdb100', 8],
    ['kmcdi100', 6],
    ['kmcdr100', 7],
    ['kmcv1', 4],
    ['kmcv2', 5],
    ['kmcvx100', 9],
  ]);
  const runner = kernel(() => RECORDED, index);
  const r = ruleset(runner);
  await r.sync(WANT);
  index.set('kmcvx100', 12);
  runner.calls.length = 0;
  await r.sync(WANT);
  assert.equal(runner.commands().filter((c) => c === 'nft -f -').length, 1, 'the new ifindex re-binds the hooks');
  runner.calls.length = 0;
  await r.sync(WANT);
  assert.equal(runner.commands().filter((c) => c === 'nft -f -').length, 0);
  index.set('kmcdr100', 13);
  await r.sync(WANT);
  assert.equal(runner.commands().filter((c) => c === 'nft -f -').length, 1, 'a recreated delivery hop re-binds too');
  runner.calls.length = 0;
  r.markRebind();
  await r.sync(WANT);
  assert.equal(runner.commands().filter((c) => c === 'nft -f -').length, 1);
});

test('fail closed: a read-back that differs, a refused transaction (retry soon), not permitted (exit 3)', async () => {
  const stale = ruleset(kernel(() => fixture('iproute2/node/nft-node-stale.json')));
  await assert.rejects(stale.sync(WANT), /verify node ruleset: chain dl-100 points at a deleted device/);
  assert.equal(stale.isInstalled, false);
  assert.match(stale.lastError ?? '', /^read back: /);
  assert.equal(stale.chain('dl-100'), undefined, 'nothing is programmed on an unverified ruleset');

  const retries = { n: 0 };
  const refused = ruleset(kernel(() => undefined).on('nft -f -', { code: 1, stderr: 'Error: Could not process rule: No such file or directory' }), retries);
  await assert.rejects(refused.sync(WANT), /install node ruleset: /);
  assert.equal(retries.n, 1);
  const denied = ruleset(kernel(() => undefined).on('nft -f -', { code: 1, stderr: 'Error: Operation not permitted' }), retries);
  await assert.rejects(denied.sync(WANT), (e: Error & { exitCode?: number }) => e.exitCode === 3 && /CAP_NET_ADMIN/.test(e.message));
  assert.equal(retries.n, 1);
});

test('remove: one transaction deleting only the kmcast-node table', async () => {
  const runner = new FakeRunner();
  await ruleset(runner).remove();
  assert.deepEqual(
    runner.calls.map((c) => [c.argv.join(' '), c.input]),
    [['nft -f -', 'table netdev kmcast-node\ndelete table netdev kmcast-node\n']],
  );
});
