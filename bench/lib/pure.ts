/**
 * Pure parts of the benchmark suite: parsers of iperf2 and /proc output, the max-rate search,
 * ratios and the per-scenario table. Everything that touches namespaces lives in net.ts/lab.ts.
 */

// The iperf2 parsers are the lab's (src/lab/iperf.ts); the benchmarks keep their names.
export { parseIperfSent as parseIperfClientSent, parseIperfLoss as parseIperfServer } from '../../src/lab/iperf.js';
export type { IperfLoss as IperfServerReport } from '../../src/lab/iperf.js';

/** VmRSS of /proc/PID/status, in bytes. */
export function parseVmRssBytes(status: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
}

/** utime + stime (clock ticks) of /proc/PID/stat; the command name may contain spaces and ')'. */
export function parseCpuTicks(stat: string): number | undefined {
  const end = stat.lastIndexOf(')');
  if (end < 0) return undefined;
  const fields = stat.slice(end + 2).split(' ');
  // After "pid (comm) ": state is field 3, utime field 14, stime field 15 (1-based, proc(5)).
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
}

export interface TrialOutcome {
  /** Rate the sender was asked for, pps (0 = unlimited). */
  readonly offeredPps: number;
  /** Rate the sender achieved, pps. */
  readonly sentPps: number;
  /** Worst receiver loss, percent. */
  readonly lossPercent: number;
}

export interface MaxRateResult {
  /** Highest achieved rate with loss under the limit; 0 when no trial passed. */
  readonly maxPps: number;
  /** What the unlimited-rate trial achieved (the sender's own ceiling in this setup). */
  readonly unlimited: TrialOutcome;
  /** True when even the unlimited trial passed: the sender, not the path, is the limit. */
  readonly senderBound: boolean;
  readonly trials: readonly TrialOutcome[];
}

/**
 * Highest rate with loss below `maxLossPercent`: one unlimited trial, then a binary search over
 * the offered rate between 0 and what the unlimited trial achieved. Each trial is passed in, so
 * the search is tested without a network.
 */
export async function findMaxRate(
  trial: (offeredPps: number) => Promise<TrialOutcome>,
  opts: { readonly maxLossPercent: number; readonly steps: number; readonly floorPps?: number },
): Promise<MaxRateResult> {
  const trials: TrialOutcome[] = [];
  const unlimited = await trial(0);
  trials.push(unlimited);
  if (unlimited.lossPercent < opts.maxLossPercent) {
    return { maxPps: unlimited.sentPps, unlimited, senderBound: true, trials };
  }
  let lo = opts.floorPps ?? 0;
  let hi = unlimited.sentPps;
  let best = 0;
  for (let i = 0; i < opts.steps && hi - lo > Math.max(100, hi * 0.02); i++) {
    const mid = Math.round((lo + hi) / 2);
    const t = await trial(mid);
    trials.push(t);
    if (t.lossPercent < opts.maxLossPercent) {
      lo = mid;
      best = Math.max(best, t.sentPps);
    } else hi = mid;
  }
  return { maxPps: best, unlimited, senderBound: false, trials };
}

export function ratio(value: number | null | undefined, base: number | null | undefined): number | null {
  if (value === null || value === undefined || base === null || base === undefined || base === 0) return null;
  return value / base;
}

export interface ResultRow {
  readonly label: string;
  /** Metric name -> value (null = not measured). */
  readonly values: Readonly<Record<string, number | string | null>>;
}

export interface ScenarioResult {
  readonly name: string;
  readonly title: string;
  /** The metric shown in the ratio column, and the row label it is compared against. */
  readonly ratioOf?: {
    readonly metric: string;
    /** Label of the baseline row; `baselineFor` overrides it per row label. */
    readonly baseline: string;
    readonly baselineFor?: Readonly<Record<string, string>>;
    readonly baselineScenario?: string;
  };
  readonly rows: readonly ResultRow[];
  readonly notes: readonly string[];
  readonly error?: string;
  readonly seconds: number;
}

function cell(v: number | string | null | undefined): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3);
}

/**
 * The table of one scenario; with `ratioOf`, a last column "x BASE" = metric / the baseline
 * row's metric (looked up in `baselines` when it comes from another scenario of the same run).
 */
export function formatScenario(r: ScenarioResult, baselines: ReadonlyMap<string, ScenarioResult> = new Map()): string {
  const out = [`== ${r.name}: ${r.title} (${r.seconds.toFixed(0)} s)`];
  if (r.error) out.push(`   FAILED: ${r.error}`);
  const metrics = [...new Set(r.rows.flatMap((row) => Object.keys(row.values)))];
  const baseOf = (label: string): number | null => {
    if (!r.ratioOf) return null;
    const src = r.ratioOf.baselineScenario ? baselines.get(r.ratioOf.baselineScenario) : r;
    const baseLabel = r.ratioOf.baselineFor?.[label] ?? r.ratioOf.baseline;
    const v = src?.rows.find((row) => row.label === baseLabel)?.values[r.ratioOf.metric];
    return typeof v === 'number' ? v : null;
  };
  const header = ['', ...metrics];
  if (r.ratioOf) header.push(`x ${r.ratioOf.baselineFor ? 'baseline' : r.ratioOf.baseline}`);
  const rows = r.rows.map((row) => {
    const cells = [row.label, ...metrics.map((m) => cell(row.values[m]))];
    if (r.ratioOf) {
      const v = row.values[r.ratioOf.metric];
      const x = ratio(typeof v === 'number' ? v : null, baseOf(row.label));
      cells.push(x === null ? '-' : `${x.toFixed(2)}x`);
    }
    return cells;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]): string => `   ${c.map((s, i) => (i === 0 ? s.padEnd(widths[i] ?? 0) : s.padStart(widths[i] ?? 0))).join('  ')}`.trimEnd();
  if (rows.length > 0) out.push(line(header), ...rows.map(line));
  for (const n of r.notes) out.push(`   - ${n}`);
  return out.join('\n');
}

/** Nearest-rank percentile (p in 0..100) of unsorted values; null when empty. */
export function pct(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1] ?? null;
}

/** Node.js/V8 options the resources scenario runs the agent with, one table row each. */
export interface NodeOptionSet {
  readonly label: string;
  readonly args: readonly string[];
  /** Extra environment of the agent process (e.g. glibc malloc tunables). */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * Candidates to cut the agent's RSS, all safe for a long-running daemon except where noted: the
 * young generation (semi-space) is what V8 sizes for throughput, not for a process that handles
 * a few datagrams a second; the old-space cap only matters if the heap ever grows near it;
 * --v8-pool-size sets V8's background threads (each thread costs stack and malloc arenas);
 * --optimize-for-size trades some speed for memory; MALLOC_ARENA_MAX=2 stops glibc from giving
 * each of Node's threads its own malloc arena; --jitless interprets everything (a CPU cost,
 * measured here to show it, not recommended).
 */
export const NODE_OPTION_SETS: readonly NodeOptionSet[] = [
  { label: 'default', args: [] },
  { label: 'semi-space 1 MB', args: ['--max-semi-space-size=1'] },
  { label: 'semi-space 1, old-space 64 MB', args: ['--max-semi-space-size=1', '--max-old-space-size=64'] },
  { label: 'v8-pool-size 1', args: ['--v8-pool-size=1'] },
  { label: 'optimize-for-size', args: ['--optimize-for-size'] },
  { label: 'jitless', args: ['--jitless'] },
  { label: 'semi-space 1 + optimize-for-size', args: ['--max-semi-space-size=1', '--optimize-for-size'] },
  { label: 'malloc arenas 2', args: [], env: { MALLOC_ARENA_MAX: '2' } },
  { label: 'combined', args: ['--max-semi-space-size=1', '--v8-pool-size=1', '--optimize-for-size'], env: { MALLOC_ARENA_MAX: '2' } },
];

/** Row label of an agent resources sample: the state, then the Node.js options when not default. */
export function resourceLabel(state: string, set: NodeOptionSet): string {
  const opts = [...Object.entries(set.env ?? {}).map(([k, v]) => `${k}=${v}`), ...set.args];
  return opts.length === 0 ? state : `${state}, ${opts.join(' ')}`;
}

/** What a node agent's `/status` body says of its gateway: active, the groups joined, datagrams carried in for `group`. */
export function gatewayState(body: string, group: string): { active: boolean; installed: boolean; joined: string[]; inbound: number } | undefined {
  let s: { gateway?: { active?: unknown; joined?: unknown; table?: { installed?: unknown }; traffic?: unknown } };
  try {
    s = JSON.parse(body) as typeof s;
  } catch {
    return undefined;
  }
  const g = s.gateway;
  if (!g) return undefined;
  const traffic = Array.isArray(g.traffic) ? (g.traffic as { group?: unknown; direction?: unknown; datagrams?: unknown }[]) : [];
  const row = traffic.find((t) => t.group === group && t.direction === 'in');
  return {
    active: g.active === true,
    installed: g.table?.installed === true,
    joined: Array.isArray(g.joined) ? g.joined.filter((x): x is string => typeof x === 'string') : [],
    inbound: typeof row?.datagrams === 'number' ? row.datagrams : 0,
  };
}

/** One line of `bridge -t monitor mdb`: an entry added or deleted. */
export interface MdbEvent {
  readonly deleted: boolean;
  readonly dev: string;
  readonly group: string;
  readonly dst: string | undefined;
  /** When `bridge` printed it (its -t timestamp), ms since the epoch; the arrival time without one. */
  readonly atMs: number;
  /** When the bench read the line, ms since the epoch. */
  readonly arrivalMs: number;
}

/**
 * `Timestamp: Fri Dec  4 21:50:04 2026 412266 usec` (`bridge -t monitor`, printed with localtime:
 * run it with TZ=UTC) -> ms since the epoch, with the microseconds; undefined for any other line.
 */
export function parseMonitorTimestamp(line: string): number | undefined {
  const m = /^Timestamp: (.+ \d{4}) (\d+) usec\s*$/.exec(line.trim());
  if (!m?.[1] || m[2] === undefined) return undefined;
  const s = Date.parse(`${m[1]} UTC`);
  return Number.isFinite(s) ? s + Number(m[2]) / 1000 : undefined;
}

/**
 * Reads `bridge -t monitor mdb` line by line: a `Timestamp:` line stamps the entry line after it.
 * Lines look like `[Deleted ]dev kmcvx100 port kmcvx100 grp 239.1.2.3 permanent dst 172.31.1.2`.
 */
export class MdbMonitorParser {
  private stamp: number | undefined;

  push(line: string, arrivalMs: number): MdbEvent | undefined {
    const ts = parseMonitorTimestamp(line);
    if (ts !== undefined) {
      this.stamp = ts;
      return undefined;
    }
    const m = /^(Deleted )?dev (\S+) port \S+ grp (\S+)(?:.* dst (\S+))?/.exec(line.trim());
    const at = this.stamp ?? arrivalMs;
    this.stamp = undefined;
    if (!m?.[2] || !m[3]) return undefined;
    return { deleted: m[1] !== undefined, dev: m[2], group: m[3], dst: m[4], atMs: at, arrivalMs };
  }
}

/**
 * Sum of the samples of `name` in Prometheus text, optionally only those with every label of
 * `labels`; undefined when there is none.
 */
export function promValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m?.[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (!Object.entries(labels).every(([k, v]) => have.get(k) === v)) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

/**
 * Private memory (USS) of /proc/PID/smaps_rollup, in bytes: Private_Clean + Private_Dirty +
 * Private_Hugetlb, the pages no other process maps (what exiting would free).
 */
export function parsePrivateBytes(rollup: string): number | undefined {
  let kb: number | undefined;
  for (const m of rollup.matchAll(/^Private_(?:Clean|Dirty|Hugetlb):\s+(\d+)\s+kB/gm)) kb = (kb ?? 0) + Number(m[1]);
  return kb === undefined ? undefined : kb * 1024;
}

/** 'met' when `value` is below `limit`, 'missed' when not, '-' when nothing was measured. */
export function below(value: number | null | undefined, limit: number): 'met' | 'missed' | '-' {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-';
  return value < limit ? 'met' : 'missed';
}

/** A run of events with no gap longer than the threshold between them. */
export interface Burst {
  readonly start: number;
  readonly end: number;
  readonly count: number;
}

/**
 * Groups sorted-or-not times (ms) into bursts: a gap over `gapMs` starts a new one; only bursts of
 * at least `minCount` events are returned (e.g. an agent's pass: dozens of processes in a row).
 */
export function bursts(times: readonly number[], gapMs: number, minCount: number): Burst[] {
  const out: Burst[] = [];
  const sorted = [...times].sort((a, b) => a - b);
  let cur: { start: number; end: number; count: number } | undefined;
  for (const t of sorted) {
    if (cur && t - cur.end <= gapMs) {
      cur.end = t;
      cur.count++;
      continue;
    }
    if (cur && cur.count >= minCount) out.push(cur);
    cur = { start: t, end: t, count: 1 };
  }
  if (cur && cur.count >= minCount) out.push(cur);
  return out;
}

/** Whether [from, to] meets any of the bursts. */
export function overlapsBurst(list: readonly Burst[], from: number, to: number): boolean {
  return list.some((b) => b.start <= to && b.end >= from);
}
