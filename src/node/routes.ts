/**
 * Route lookup for member resolution without one `ip route get` per listed pod IP: the node's
 * IPv4 routes are read once per pass (`ip -4 -j route show table all`) and every IP is resolved
 * here with a longest-prefix match. Pure.
 *
 * What `ip route get` consults is the policy rules; with the kernel's default rules (priority 0
 * `local`, 32766 `main`, 32767 `default`) that is: the local table first (the node's own
 * addresses and broadcast routes: any match ends the lookup), then main, then default. Tables
 * are matched in that order; within a table the longest prefix wins, then the lowest metric.
 * Any other rule (policy routing: source, fwmark, iif, other tables) cannot be evaluated from the
 * route table alone: `defaultRulesOnly` says so and the caller falls back to `ip route get`.
 */
import type { RouteEntry } from '../kernel/parse.js';
import { parseIpv4 } from '../net/ipv4.js';

/** The route `ip route get` would return, in the shape of `parseRouteGet`. */
export interface RouteMatch {
  readonly dev: string | undefined;
  readonly gateway: string | undefined;
  readonly type: string;
}

interface Prefix {
  readonly net: number;
  readonly len: number;
  readonly route: RouteEntry;
  readonly metric: number;
}

const LOOKUP_ORDER = ['local', 'main', 'default'] as const;

function prefixOf(r: RouteEntry): { net: number; len: number } | undefined {
  if (r.dst === 'default') return { net: 0, len: 0 };
  const [addr, lenText] = r.dst.split('/');
  const len = lenText === undefined ? 32 : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > 32) return undefined;
  const n = addr === undefined ? undefined : parseIpv4(addr);
  if (n === undefined) return undefined;
  return { net: len === 0 ? 0 : (n & maskOf(len)) >>> 0, len };
}

const maskOf = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

/** The IPv4 routes of one namespace, indexed for lookups by the default rules' tables. */
export class RouteTable {
  private readonly tables = new Map<string, Prefix[]>();

  constructor(routes: readonly RouteEntry[]) {
    for (const route of routes) {
      const p = prefixOf(route);
      if (!p) continue;
      const list = this.tables.get(route.table) ?? [];
      list.push({ ...p, route, metric: route.metric ?? 0 });
      this.tables.set(route.table, list);
    }
    for (const list of this.tables.values()) list.sort((a, b) => b.len - a.len || a.metric - b.metric);
  }

  /** The route to `ip` (what `ip route get` prints with the default rules), or undefined. */
  lookup(ip: string): RouteMatch | undefined {
    const n = parseIpv4(ip);
    if (n === undefined) return undefined;
    for (const table of LOOKUP_ORDER) {
      const hit = (this.tables.get(table) ?? []).find((p) => (n & maskOf(p.len)) >>> 0 === p.net);
      // A `throw` route ends this table's lookup and continues with the next rule's table.
      if (hit && hit.route.type !== 'throw') return { dev: hit.route.dev, gateway: hit.route.gateway, type: hit.route.type };
    }
    return undefined;
  }
}

/** True when `ip -j rule show` lists exactly the kernel's default IPv4 rules. Pure. */
export function defaultRulesOnly(stdout: string): boolean {
  let rules: unknown;
  try {
    rules = JSON.parse(stdout);
  } catch {
    return false;
  }
  if (!Array.isArray(rules)) return false;
  const want = new Map<number, string>([
    [0, 'local'],
    [32766, 'main'],
    [32767, 'default'],
  ]);
  if (rules.length > want.size) return false;
  for (const r of rules as Array<Record<string, unknown>>) {
    const keys = Object.keys(r).filter((k) => k !== 'priority' && k !== 'src' && k !== 'table');
    if (keys.length || r.src !== 'all' || want.get(Number(r.priority)) !== r.table) return false;
  }
  return true;
}
