#!/usr/bin/env node
// Runs the compiled tests with node's test runner: unit tests (no root), then the privileged
// network-namespace tests. As root under CI a skipped privileged test is a failure: the helper in
// test/netns/harness.ts throws instead of skipping when KMCAST_REQUIRE_NETNS=1.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const which = process.argv[2] ?? 'all';
const suites = which === 'all' ? ['unit', 'netns'] : [which];
const env = { ...process.env };
if (process.env.CI && process.getuid?.() === 0) env.KMCAST_REQUIRE_NETNS = '1';

let failed = false;
for (const suite of suites) {
  const dir = `dist/test/${suite}`;
  if (!existsSync(dir)) continue;
  // Privileged tests build labs of namespaces; one file at a time keeps 2-core machines honest.
  const concurrency = suite === 'netns' ? '1' : '2';
  console.log(`\n=== ${suite} tests ===`);
  const r = spawnSync(process.execPath, ['--enable-source-maps', '--test', `--test-concurrency=${concurrency}`, dir], {
    stdio: 'inherit',
    env,
  });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
