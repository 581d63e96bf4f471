/** What every scenario gets: run settings, a progress printer and shared data-plane measurements. */
import { findMaxRate } from './pure.js';
import type { ResultRow, ScenarioResult } from './pure.js';
import { iperfTrial } from './net.js';

export interface BenchContext {
  readonly quick: boolean;
  /** Seconds per search trial. */
  readonly trialS: number;
  /** Seconds of the confirming trial at the found maximum (10 s in a full run). */
  readonly confirmS: number;
  /** Namespace prefix of this run (starts with "kmc"); lab ids derive from `id`. */
  readonly prefix: string;
  readonly id: string;
  /** node-scale: member pods on node 1 (default 110, the kubelet's default max pods). */
  readonly nodePods?: number;
  /** node-scale: domains (Services) the member pods are spread over (default 1). */
  readonly nodeDomains?: number;
  readonly results: ReadonlyMap<string, ScenarioResult>;
  progress(msg: string): void;
}

/** Loss threshold of the "highest rate" measurement, percent. */
export const MAX_LOSS_PERCENT = 0.1;
export const BENCH_GROUP = '239.255.72.1';
export const BENCH_PORT = 5201;

export const M = {
  unlimitedPps: 'sent pps (unlimited)',
  unlimitedLoss: 'loss % (unlimited)',
  maxPps: 'max pps (<0.1% loss)',
  confirmLoss: 'loss % at max',
  zeroLossAt80: 'loss % at 80% of max',
} as const;

/**
 * The data-plane measurement used by every throughput scenario: an unlimited trial, a binary
 * search for the highest rate under 0.1% loss, a confirming trial of confirmS seconds at that
 * rate (stepping down 10% once if it fails), and a trial at 80% of it.
 */
export async function measureDataPlane(
  ctx: BenchContext,
  label: string,
  o: { sender: string; receivers: readonly string[]; size: number; beforeSend?: () => Promise<void>; beforeStart?: () => Promise<void>; group6?: string },
): Promise<ResultRow> {
  const group = o.group6 ?? BENCH_GROUP;
  const base = { sender: o.sender, receivers: o.receivers, group, port: BENCH_PORT, size: o.size, beforeSend: o.beforeSend, beforeStart: o.beforeStart, ipv6: o.group6 !== undefined };
  const search = await findMaxRate(
    async (pps) => {
      const t = await iperfTrial({ ...base, pps, seconds: ctx.trialS });
      ctx.progress(`${label}: offered ${pps || 'unlimited'} pps -> sent ${Math.round(t.sentPps)} pps, worst loss ${t.lossPercent.toFixed(3)}%`);
      return t;
    },
    { maxLossPercent: MAX_LOSS_PERCENT, steps: ctx.quick ? 4 : 5 },
  );
  let max = search.maxPps;
  let confirm: number | null = null;
  for (let attempt = 0; max > 0 && attempt < 3; attempt++) {
    if (attempt > 0) max = Math.round(max * 0.9);
    const t = await iperfTrial({ ...base, pps: max, seconds: ctx.confirmS });
    ctx.progress(`${label}: confirm ${Math.round(max)} pps for ${ctx.confirmS} s -> loss ${t.lossPercent.toFixed(3)}%`);
    confirm = t.lossPercent;
    if (t.lossPercent < MAX_LOSS_PERCENT) break;
  }
  let at80: number | null = null;
  if (max > 0) {
    const t = await iperfTrial({ ...base, pps: Math.round(max * 0.8), seconds: ctx.trialS });
    at80 = t.lossPercent;
  }
  return {
    label,
    values: {
      [M.unlimitedPps]: Math.round(search.unlimited.sentPps),
      [M.unlimitedLoss]: search.unlimited.lossPercent,
      [M.maxPps]: Math.round(max),
      [M.confirmLoss]: confirm,
      [M.zeroLossAt80]: at80,
      limit: search.senderBound ? 'sender' : 'path/receivers',
    },
  };
}
