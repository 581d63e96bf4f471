#!/usr/bin/env node
/**
 * `npm run bench`: the benchmark suite (root; builds its own namespaces, all named kmc<run id>...).
 * Prints a table per scenario with ratios against a baseline measured in the same run and writes
 * every number to bench/results/<timestamp>.json so runs can be compared.
 *
 *   node dist/bench/run.js [--quick] [--scenario NAME[,NAME]] [--trial S] [--confirm S] [--node-pods N] [--node-domains N] [--list]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MAX_PODS_PER_NODE } from '../src/lab/plan.js';
import { IpClient } from '../src/kernel/ip.js';
import type { BenchContext } from './lib/context.js';
import { deleteNetns, run, runner, stopAll } from './lib/net.js';
import type { ResultRow, ScenarioResult } from './lib/pure.js';
import { formatScenario } from './lib/pure.js';
import { removeLabs, SCENARIOS } from './scenarios/index.js';

const HELP = `Usage: npm run bench -- [--quick] [--scenario NAME[,NAME]] [--trial S] [--confirm S] [--node-pods N] [--node-domains N] [--list]

Runs as root. Scenarios (default: all, in this order):
${SCENARIOS.map((s) => `  ${s.name.padEnd(14)} ${s.title}`).join('\n')}

  --scenario NAME[,NAME]
                 only these scenarios (repeatable), in the order above, e.g. --scenario gateway-in;
                 kmcast-1to3 and node-1to3 show ratios against baseline's rows only with it
  --quick        short trials, fan-out with 2 and 10 members only, node fan-out with 3 per node
  --trial S      seconds per search trial (default 2, quick 1)
  --confirm S    seconds of the trial that confirms the highest rate (default 10, quick 2)
  --node-pods N  node-scale: member pods on node 1 (default 110, the kubelet's default max pods)
  --node-domains N
                 node-scale: domains the member pods are spread over, in turn (default 1)
  --out DIR      where to write the JSON results (default bench/results)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      scenario: { type: 'string', multiple: true },
      trial: { type: 'string' },
      confirm: { type: 'string' },
      out: { type: 'string' },
      'node-pods': { type: 'string' },
      'node-domains': { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || values.list) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const wanted = (values.scenario ?? [])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = wanted.filter((w) => !SCENARIOS.some((s) => s.name === w));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown --scenario ${unknown.join(', ')}: pick from ${SCENARIOS.map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (it builds network namespaces): run `sudo npm run bench`\n');
    return 3;
  }
  const quick = values.quick;
  const num = (v: string | undefined, d: number, flag: string): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || n > 60) throw new Error(`invalid ${flag} ${JSON.stringify(v)}: seconds between 0 and 60`);
    return n;
  };
  const nodePods = values['node-pods'] === undefined ? undefined : Number(values['node-pods']);
  if (nodePods !== undefined && (!Number.isInteger(nodePods) || nodePods < 3 || nodePods > MAX_PODS_PER_NODE)) {
    process.stderr.write(`bench: invalid --node-pods ${JSON.stringify(values['node-pods'])}: a whole number from 3 to ${MAX_PODS_PER_NODE}\n`);
    return 2;
  }
  const nodeDomains = values['node-domains'] === undefined ? undefined : Number(values['node-domains']);
  if (nodeDomains !== undefined && (!Number.isInteger(nodeDomains) || nodeDomains < 1 || nodeDomains > 3)) {
    process.stderr.write(`bench: invalid --node-domains ${JSON.stringify(values['node-domains'])}: 1, 2 or 3\n`);
    return 2;
  }
  const id = randomBytes(2).toString('hex');
  const ctx: BenchContext & { results: Map<string, ScenarioResult> } = {
    quick,
    trialS: num(values.trial, quick ? 1 : 2, '--trial'),
    confirmS: num(values.confirm, quick ? 2 : 10, '--confirm'),
    prefix: `kmcb${id}`,
    id: `b${id}`,
    ...(nodePods !== undefined ? { nodePods } : {}),
    ...(nodeDomains !== undefined ? { nodeDomains } : {}),
    results: new Map(),
    progress: (msg) => process.stderr.write(`  ${msg}\n`),
  };

  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      await stopAll();
      await removeLabs(ctx); // first: lab down also stops the lab DNS and agents it recorded
      await deleteNetns(ctx.prefix);
    })());
  const onSignal = (): void => {
    process.stderr.write('\nbench: interrupted, removing namespaces...\n');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const started = Date.now();
  const machine = {
    hostname: hostname(),
    kernel: release(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    // iperf2 prints its version on stderr and exits 1.
    iperf: await runner.run(['iperf', '-v'], { allowFail: true }).then(
      (r) => `${r.stdout}${r.stderr}`.trim() || 'unknown',
      () => 'not installed',
    ),
    iproute2: (
      await new IpClient(runner).versionOutput().then(
        (r) => (r.code === 0 ? r.stdout : 'unknown'),
        () => 'unknown',
      )
    ).trim(),
    loadAverage: (await run(['cat', '/proc/loadavg'])).trim(),
  };
  process.stderr.write(`bench run ${id}: ${quick ? 'quick' : 'full'}, ${machine.cpus} CPUs (${machine.cpuModel}), kernel ${machine.kernel}, load ${machine.loadAverage}\n`);
  const selected = SCENARIOS.filter((s) => wanted.length === 0 || wanted.includes(s.name));
  try {
    for (const s of selected) {
      process.stderr.write(`\n[${s.name}] ${s.title}\n`);
      const t0 = Date.now();
      let rows: ResultRow[] = [];
      let notes: string[] = [];
      let error: string | undefined;
      try {
        ({ rows, notes } = await s.run(ctx));
      } catch (err) {
        error = err instanceof Error ? err.message : String(err);
      }
      const result: ScenarioResult = { name: s.name, title: s.title, rows, notes, seconds: (Date.now() - t0) / 1000, ...(s.ratioOf ? { ratioOf: s.ratioOf } : {}), ...(error ? { error } : {}) };
      ctx.results.set(s.name, result);
      process.stdout.write(`\n${formatScenario(result, ctx.results)}\n`);
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const dir = values.out ?? join(fileURLToPath(new URL('../../bench/results', import.meta.url)));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`);
  const doc = {
    run: id,
    mode: quick ? 'quick' : 'full',
    startedAt: new Date(started).toISOString(),
    seconds: (Date.now() - started) / 1000,
    machine,
    settings: { trialS: ctx.trialS, confirmS: ctx.confirmS },
    scenarios: [...ctx.results.values()],
  };
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  process.stdout.write(`\nresults: ${file} (${doc.seconds.toFixed(0)} s)\n`);
  return [...ctx.results.values()].some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
