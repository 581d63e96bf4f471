#!/usr/bin/env node
/**
 * `npm run soak`: a fixed multicast load through the overlay while agents restart, one at a time.
 * 3 senders (one per node) share a fixed total rate to one group; 6 receivers (2 per node: calico,
 * bridge, calico) count sequence numbers. Every --restart-every seconds one agent is restarted, in
 * turn, alternating SIGTERM (LEAVE, vx0 removed, then a fresh start) and SIGKILL (vx0 and its
 * entries stay, the new agent adopts them). Reports, per receiver and sender, received, lost and
 * duplicates, and whether every loss lies inside a restart window (signal -> the restarted agent
 * ready and every flood list complete again, plus a grace second for re-joins and MDB updates).
 * Agents run with the production defaults (heartbeat 1 s, expiry 5 heartbeats, resync 10 s).
 *
 *   node dist/bench/soak.js [--duration S] [--rate PPS] [--restart-every S] [--out DIR]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../src/errors.js';
import { IpClient } from '../src/kernel/ip.js';
import { ExecRunner } from '../src/kernel/runner.js';
import { labDown, labUp } from '../src/lab/lab.js';
import type { AgentHandle } from '../src/lab/process.js';
import { podFetch, startAgent, waitFor } from '../src/lab/process.js';
import type { Lab, LabPod } from '../src/lab/types.js';
import type { PairResult, Stream, StreamResult, Window } from './soak/stream.js';
import { analyse, startStream } from './soak/stream.js';

const HELP = `Usage: npm run soak -- [--duration S] [--rate PPS] [--restart-every S] [--out DIR]

Runs as root; builds its own lab (namespaces kmc<id>-...) and removes it at the end or on Ctrl-C.
  --duration S        seconds of traffic (default 600)
  --rate PPS          total datagrams per second of the 3 senders (default 2000)
  --restart-every S   seconds between agent restarts (default 60; none in the last 15 s)
  --out DIR           where to write the JSON result (default bench/results)`;

/** After "converged": time for receivers to re-join (every 500 ms) and joins to reach the senders. */
const WINDOW_GRACE_MS = 1000;
const REJOIN_MS = 500;

const runner = new ExecRunner();

interface Restart extends Window {
  readonly pod: string;
  readonly signal: 'SIGTERM' | 'SIGKILL';
  /** Signal to "ready and every flood list complete", ms. */
  readonly recoveryMs: number;
}

async function floodPeers(pod: LabPod): Promise<string[]> {
  const fdb = await new IpClient(runner, pod.netns).bridge.fdb('vx0');
  return fdb.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst ?? '');
}

async function converged(pods: readonly LabPod[]): Promise<boolean> {
  for (const p of pods) {
    const want = pods
      .filter((o) => o !== p)
      .map((o) => o.ip)
      .sort()
      .join();
    if ((await floodPeers(p)).sort().join() !== want) return false;
  }
  return true;
}

async function ready(pod: LabPod): Promise<boolean> {
  return (await podFetch(pod, '/readyz').catch(() => ({ status: 0 }))).status === 200;
}

function num(v: string | undefined, d: number, flag: string, min: number, max: number): number {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`invalid ${flag} ${JSON.stringify(v)}: a number from ${min} to ${max}`);
  return n;
}

function pct(n: number, of: number): string {
  return of === 0 ? '-' : `${((100 * n) / of).toFixed(3)}%`;
}

function table(rows: readonly (readonly string[])[]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 || i === 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')).join('\n');
}

function report(pairs: readonly PairResult[], result: StreamResult, restarts: readonly Restart[], t0: number): string {
  const rel = (t: number): string => `${((t - t0) / 1000).toFixed(1)}s`;
  const lines: string[] = [];
  lines.push('Restarts (times from the first datagram):');
  lines.push(table([['pod', 'signal', 'at', 'recovered', 'recovery ms'], ...restarts.map((r) => [r.pod, r.signal, rel(r.start), rel(r.end - WINDOW_GRACE_MS), String(r.recoveryMs)])]));
  lines.push('', 'Per receiver and sender:');
  const rows: string[][] = [['receiver', 'sender', 'sent', 'received', 'lost', 'loss', 'dups', 'lost outside windows', 'loss intervals']];
  for (const p of pairs) {
    const intervals = p.lossTimes.map(([a, b]) => `${rel(a)}-${rel(b)}`);
    rows.push([
      p.receiver,
      p.sender,
      String(p.sent),
      String(p.received),
      String(p.lost),
      pct(p.lost, p.sent),
      String(p.duplicates),
      String(p.lostOutsideWindows),
      intervals.length > 4 ? `${intervals.slice(0, 4).join(' ')} (+${intervals.length - 4})` : intervals.join(' ') || '-',
    ]);
  }
  lines.push(table(rows));
  lines.push('', 'Per receiver:');
  const per: string[][] = [['receiver', '', 'received', 'lost', 'dups', 'lost outside windows', 're-joins']];
  for (const [name, r] of result.receivers) {
    const mine = pairs.filter((p) => p.receiver === name);
    const sum = (f: (p: PairResult) => number): number => mine.reduce((n, p) => n + f(p), 0);
    per.push([name, '', String(sum((p) => p.received)), String(sum((p) => p.lost)), String(sum((p) => p.duplicates)), String(sum((p) => p.lostOutsideWindows)), String(r.rejoins)]);
  }
  lines.push(table(per));
  const lost = pairs.reduce((n, p) => n + p.lost, 0);
  const dups = pairs.reduce((n, p) => n + p.duplicates, 0);
  const outside = pairs.reduce((n, p) => n + p.lostOutsideWindows, 0);
  const sent = pairs.reduce((n, p) => n + p.sent, 0);
  const lag = Math.max(...result.senders.map((s) => s.maxLagMs));
  lines.push(
    '',
    `Total: ${sent} expected deliveries, ${lost} lost (${pct(lost, sent)}), ${dups} duplicates, ${outside} lost outside restart windows; worst sender lag ${lag.toFixed(1)} ms, send errors ${result.senders.reduce((n, s) => n + s.errors, 0)}.`,
    `Verdict: ${dups === 0 ? 'zero duplicates' : `${dups} DUPLICATES`}; ${outside === 0 ? 'loss only inside restart windows' : `${outside} datagrams LOST OUTSIDE restart windows`}.`,
  );
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      rate: { type: 'string' },
      'restart-every': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  let durationS: number, rate: number, everyS: number;
  try {
    durationS = num(values.duration, 600, '--duration', 20, 86_400);
    rate = num(values.rate, 2000, '--rate', 3, 60_000);
    everyS = num(values['restart-every'], 60, '--restart-every', 5, 86_400);
  } catch (err) {
    process.stderr.write(`soak: ${errorMessage(err)}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('soak: needs root (it builds network namespaces): run `sudo npm run soak`\n');
    return 3;
  }
  const progress = (msg: string): void => void process.stderr.write(`  ${msg}\n`);
  const id = `s${randomBytes(2).toString('hex')}`;
  let lab: Lab | undefined;
  let stream: Stream | undefined;
  const agents = new Map<string, AgentHandle>();
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      stream?.kill();
      await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL').catch(() => null)));
      await labDown(runner, { id }).catch((err: unknown) => process.stderr.write(`soak: removing lab ${id}: ${errorMessage(err)}\n`));
    })());
  const onSignal = (): void => {
    process.stderr.write('\nsoak: interrupted, removing the lab\n');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    progress(`lab ${id}: 3 nodes (calico, bridge, calico) x 2 pods`);
    lab = await labUp({ id, nodes: ['calico', 'bridge', 'calico'], podsPerNode: 2, mtu: 1500, service: 'kmcast-peers.default.svc.cluster.local' }, { runner });
    const pods = lab.pods;
    const l = lab;
    for (const pod of pods) agents.set(pod.name, await startAgent(l, pod));
    await waitFor('every agent ready', async () => (await Promise.all(pods.map(ready))).every(Boolean), 30_000, 200);
    await waitFor('flood lists converge', () => converged(pods), 15_000, 200);
    const senders = pods.filter((p) => p.name.endsWith('p1'));
    const perSender = rate / senders.length;
    progress(`${senders.length} senders (${senders.map((s) => s.name).join(', ')}) x ${perSender.toFixed(1)} pps -> ${pods.length} receivers, ${durationS} s, a restart every ${everyS} s`);
    stream = await startStream({ senders, receivers: pods, rate: perSender, durationMs: durationS * 1000, rejoinMs: REJOIN_MS, startDelayMs: 1500 });
    const t0 = stream.t0;

    const restarts: Restart[] = [];
    for (let k = 1; t0 + k * everyS * 1000 < stream.endsAt - 15_000; k++) {
      const at = t0 + k * everyS * 1000;
      await sleep(Math.max(0, at - Date.now()));
      const pod = pods[(k - 1) % pods.length]!;
      const signal = k % 2 === 1 ? 'SIGTERM' : 'SIGKILL';
      const start = Date.now();
      await agents.get(pod.name)!.stop(signal);
      agents.set(pod.name, await startAgent(l, pod));
      await waitFor(`${pod.name} ready`, () => ready(pod), 30_000, 100);
      await waitFor('flood lists converge', () => converged(pods), 30_000, 100);
      const end = Date.now();
      restarts.push({ label: `${signal} ${pod.name}`, pod: pod.name, signal, start, end: end + WINDOW_GRACE_MS, recoveryMs: end - start });
      progress(`${((start - t0) / 1000).toFixed(0)} s: ${signal} ${pod.name}, recovered in ${end - start} ms`);
    }
    progress('waiting for the senders to finish');
    const result = await stream.finish();
    stream = undefined;
    const pairs = analyse(result.senders, result.receivers, restarts);
    process.stdout.write(report(pairs, result, restarts, t0));

    const outDir = values.out ?? fileURLToPath(new URL('../../bench/results/', import.meta.url));
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    const summary = {
      kind: 'soak',
      date: new Date().toISOString(),
      host: { kernel: release(), cpus: cpus().length, node: process.version },
      config: {
        durationS,
        ratePps: rate,
        perSenderPps: perSender,
        restartEveryS: everyS,
        senders: senders.map((s) => s.name),
        receivers: pods.map((p) => p.name),
        windowGraceMs: WINDOW_GRACE_MS,
        rejoinMs: REJOIN_MS,
      },
      t0,
      restarts,
      senders: result.senders,
      rejoins: Object.fromEntries([...result.receivers].map(([n, r]) => [n, r.rejoins])),
      pairs,
      totals: {
        sent: pairs.reduce((n, p) => n + p.sent, 0),
        lost: pairs.reduce((n, p) => n + p.lost, 0),
        duplicates: pairs.reduce((n, p) => n + p.duplicates, 0),
        lostOutsideWindows: pairs.reduce((n, p) => n + p.lostOutsideWindows, 0),
      },
    };
    writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
    progress(`results: ${file}`);
    return summary.totals.duplicates === 0 && summary.totals.lostOutsideWindows === 0 ? 0 : 1;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
