/**
 * The readers' side of every agent's `/status` (`kmcast status`, `kmcast doctor`, sidecar and node
 * agent alike): the endpoint for a user's `--url`, one HTTP GET whose failures are clear errors,
 * and the table and age formatting both views use. All but `fetchStatusJson` is pure.
 */
import { KmcastError } from '../errors.js';

/** Thrown when the agent cannot be reached or answers with something that is not a status. */
export class StatusUnavailableError extends KmcastError {
  override readonly code: string = 'KMC_ERR_STATUS_UNAVAILABLE';
}

/**
 * The URL of the `/status` endpoint for a user-given `--url`: a base (`http://host:9470`), a full
 * `/status` URL, or a bare `host:port` (what people copy from `--http`).
 */
export function statusEndpoint(url: string): string {
  let base = url.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(base)) base = `http://${base.startsWith(':') ? `127.0.0.1${base}` : base}`;
  const u = new URL(base);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/status';
  return u.toString();
}

/** "0.4s ago", "12s ago", "3m04s ago", "2h05m ago", "never"; a clock skew shows as "just now". */
export function formatAge(lastSeen: string | null, now: Date): string {
  if (lastSeen === null) return 'never';
  const t = Date.parse(lastSeen);
  if (Number.isNaN(t)) return `? (${lastSeen})`;
  const ms = now.getTime() - t;
  if (ms < 0) return 'just now';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s ago`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m ago`;
  return `${Math.floor(h / 24)}d ago`;
}

/** Left-aligned columns separated by two spaces; trailing spaces trimmed. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/**
 * GET `/status` of `url` as JSON. Network failures, timeouts, 403 (the endpoint serves only its
 * own host), other non-200 answers and non-JSON become a StatusUnavailableError naming the URL,
 * `what` was read and `hint`; never a raw fetch TypeError.
 */
export async function fetchStatusJson(url: string, o: { what: string; hint: string; forbiddenHint?: string; timeoutMs?: number }): Promise<{ body: unknown; endpoint: string }> {
  const endpoint = statusEndpoint(url);
  const timeoutMs = o.timeoutMs ?? 3000;
  const prefix = `read ${o.what} from ${endpoint}`;
  let res: Response;
  try {
    res = await fetch(endpoint, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const why =
      err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
        ? `no answer within ${timeoutMs} ms`
        : cause instanceof Error
          ? ((cause as NodeJS.ErrnoException).code ?? cause.message)
          : String(cause);
    throw new StatusUnavailableError(`${prefix}: ${why}; ${o.hint}`, { cause: err });
  }
  const text = await res.text();
  if (res.status === 403 && o.forbiddenHint) throw new StatusUnavailableError(`${prefix}: HTTP 403 (${text.trim()}); ${o.forbiddenHint}`);
  if (res.status !== 200) throw new StatusUnavailableError(`${prefix}: HTTP ${res.status}; ${o.hint}`);
  try {
    return { body: JSON.parse(text) as unknown, endpoint };
  } catch {
    throw new StatusUnavailableError(`${prefix}: the answer is not JSON; ${o.hint}`);
  }
}
