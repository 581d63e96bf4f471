/**
 * The probe's result (one JSON shape for machines, one table for people), pure.
 */
import type { ProbeMode } from './options.js';
import type { SenderSummary } from './stats.js';
import { worstLossPercent } from './stats.js';

export interface SendSummary {
  readonly planned: number;
  readonly sent: number;
  /** send() calls that failed (e.g. ENOBUFS, no route); those datagrams never left. */
  readonly errors: number;
  readonly durationMs: number;
  /** Datagrams per second actually achieved (sent / duration). */
  readonly pps: number | null;
}

export interface ProbeReport {
  readonly id: string;
  readonly group: string;
  readonly port: number;
  readonly mode: ProbeMode;
  readonly size: number;
  readonly rate: number;
  /** Our own sending; null in --receive-only mode. */
  readonly send: SendSummary | null;
  /** One row per sender seen, plus expected senders that sent nothing (source "missing"). */
  readonly senders: readonly SenderSummary[];
  /** Datagrams on the port that were neither probe nor iperf2 datagrams, or of streams beyond MAX_STREAMS. */
  readonly foreign: number;
  readonly worstLossPercent: number;
  readonly maxLossPercent: number | null;
  /** False when a sender's loss is above --max-loss (the process then exits 1). */
  readonly ok: boolean;
}

export function buildReport(fields: Omit<ProbeReport, 'worstLossPercent' | 'ok' | 'maxLossPercent'> & { maxLossPercent: number | undefined }): ProbeReport {
  const worst = worstLossPercent(fields.senders);
  const max = fields.maxLossPercent;
  return {
    ...fields,
    senders: [...fields.senders].sort((a, b) => a.address.localeCompare(b.address, 'en', { numeric: true }) || a.id.localeCompare(b.id)),
    worstLossPercent: worst,
    maxLossPercent: max ?? null,
    ok: max === undefined || worst <= max,
  };
}

function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  return v >= 100 ? v.toFixed(0) : v.toFixed(3);
}

function pct(v: number): string {
  return v === 0 ? '0%' : v < 0.01 ? '<0.01%' : `${v.toFixed(2)}%`;
}

/** Left-aligns the first column(s) and right-aligns numbers, two spaces between columns. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[], leftColumns = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatTable(report: ProbeReport): string {
  const out: string[] = [];
  const target = `${report.group}:${report.port}`;
  if (report.send) {
    const s = report.send;
    out.push(
      `${report.id} sent ${s.sent}/${s.planned} datagrams of ${report.size} B to ${target} in ${(s.durationMs / 1000).toFixed(2)} s` +
        `${s.pps === null ? '' : ` (${Math.round(s.pps)} pps)`}${s.errors ? `, ${s.errors} send errors` : ''}`,
    );
  }
  if (report.mode !== 'send') {
    if (report.senders.length === 0) out.push(`no datagrams received on ${target}`);
    else {
      const rows = report.senders.map((s) => [
        s.source === 'probe' ? s.id : s.source === 'iperf2' ? 'iperf2' : '(missing)',
        s.address,
        String(s.received),
        String(s.expected),
        String(s.lost),
        pct(s.lossPercent),
        String(s.duplicates),
        String(s.reordered),
        ms(s.latencyMs?.p50),
        ms(s.latencyMs?.p99),
        ms(s.latencyMs?.max),
        ms(s.joinLatencyMs),
      ]);
      out.push(renderTable(['SENDER', 'ADDRESS', 'RECEIVED', 'EXPECTED', 'LOST', 'LOSS', 'DUP', 'REORD', 'P50ms', 'P99ms', 'MAXms', 'JOINms'], rows, 2));
    }
    if (report.foreign) out.push(`${report.foreign} datagrams on the port were not probe or iperf2 datagrams (ignored)`);
  }
  if (report.maxLossPercent !== null) {
    out.push(
      report.ok ? `ok: worst loss ${pct(report.worstLossPercent)} <= --max-loss ${report.maxLossPercent}%` : `FAIL: worst loss ${pct(report.worstLossPercent)} > --max-loss ${report.maxLossPercent}%`,
    );
  }
  return `${out.join('\n')}\n`;
}

export function formatJson(report: ProbeReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
