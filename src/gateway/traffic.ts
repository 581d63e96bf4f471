/**
 * The gateway's counters as the agent keeps them between table replacements (a replace starts the
 * kernel's counters at zero) and as /status and the metrics show them. Pure.
 *
 * Bounded: a range lets the LAN name up to 2^n groups, and the kernel's counter sets forget them
 * at each replace, so past MAX_CARRIED_GROUPS carried per-group totals are kept only for groups
 * the replaced table still held or that are configured single groups; the rest fold into one
 * `other` row per set (its totals stay monotonic). Rows shown are capped per direction (the busiest), the rest add up in
 * `other` too.
 */
import type { GatewayReadBack, GroupCount } from './nft.js';
import { ALL_DROP_REASONS, COUNTER_SETS, COUNTER_SETS6, counterSetKind, dropName } from './nft.js';
import type { GatewayTraffic } from './status-types.js';

export const OTHER = 'other';
/** Rows per direction in /status (the metrics have their own cap, MAX_GROUP_SERIES). */
export const MAX_TRAFFIC_ROWS = 256;

/** Counter set name -> group -> count. */
export type Totals = Map<string, Map<string, GroupCount>>;

const plus = (a: GroupCount | undefined, b: GroupCount): GroupCount => ({ packets: (a?.packets ?? 0) + b.packets, bytes: (a?.bytes ?? 0) + b.bytes });

export function addTotals(into: Totals, from: ReadonlyMap<string, ReadonlyMap<string, GroupCount>>): void {
  for (const [set, groups] of from) {
    let m = into.get(set);
    if (!m) into.set(set, (m = new Map()));
    for (const [g, c] of groups) m.set(g, plus(m.get(g), c));
  }
}

export function addCounts(into: Map<string, GroupCount>, from: ReadonlyMap<string, GroupCount>): void {
  for (const [k, c] of from) into.set(k, plus(into.get(k), c));
}

/** Carried groups per counter set before the ones no longer held fold into `other`. */
export const MAX_CARRIED_GROUPS = 4096;

/**
 * Adds the replaced table `back` to `carried`. When a set then carries more than `max` groups,
 * only the groups `back` held and those `keep` names (configured single groups) keep their own
 * total; every other carried group folds into `other`. So a few groups keep their history across
 * replacements, and a range storm leaves at most one table's groups plus `keep` plus `other`.
 */
export function carry(carried: Totals, back: GatewayReadBack | undefined, keep: ReadonlySet<string>, max = MAX_CARRIED_GROUPS): void {
  if (back) addTotals(carried, back.counters);
  for (const [set, m] of carried) {
    if (m.size <= max) continue;
    const held = back?.counters.get(set);
    for (const [g, c] of m) {
      if (g === OTHER || keep.has(g) || held?.has(g)) continue;
      m.set(OTHER, plus(m.get(OTHER), c));
      m.delete(g);
    }
  }
}

type Row = { group: string; direction: 'in' | 'out'; datagrams: number; bytes: number; dropped: Record<string, number> };

const zero = (): Record<string, number> => ({ rate: 0, ttl: 0, loop: 0 });

/** Per group and direction rows of `totals` (carried plus the kernel's), busiest first, at most `max` per direction plus `other`. */
export function trafficRows(totals: Totals, max = MAX_TRAFFIC_ROWS): GatewayTraffic[] {
  const rows = new Map<string, Row>();
  // The IPv6 sets hold IPv6 groups: a group is one row whichever family's set counted it.
  for (const set of [...COUNTER_SETS, ...COUNTER_SETS6]) {
    const { direction, kind } = counterSetKind(set);
    for (const [group, c] of totals.get(set) ?? []) {
      const k = `${direction} ${group}`;
      let row = rows.get(k);
      if (!row) rows.set(k, (row = { group, direction, datagrams: 0, bytes: 0, dropped: zero() }));
      if (kind === 'pass') {
        row.datagrams += c.packets;
        row.bytes += c.bytes;
      } else row.dropped[kind] = (row.dropped[kind] ?? 0) + c.packets;
    }
  }
  const weight = (r: Row): number => r.datagrams + Object.values(r.dropped).reduce((a, b) => a + b, 0);
  const out: Row[] = [];
  for (const direction of ['in', 'out'] as const) {
    const mine = [...rows.values()].filter((r) => r.direction === direction && r.group !== OTHER).sort((a, b) => weight(b) - weight(a) || a.group.localeCompare(b.group));
    const other = rows.get(`${direction} ${OTHER}`) ?? { group: OTHER, direction, datagrams: 0, bytes: 0, dropped: zero() };
    for (const r of mine.slice(max)) {
      other.datagrams += r.datagrams;
      other.bytes += r.bytes;
      for (const [k, v] of Object.entries(r.dropped)) other.dropped[k] = (other.dropped[k] ?? 0) + v;
    }
    out.push(...mine.slice(0, max).sort((a, b) => b.datagrams - a.datagrams || a.group.localeCompare(b.group)));
    if (weight(other) > 0) out.push(other);
  }
  return out;
}

/**
 * Every drop by direction and reason, from the named counters (carried plus the kernel's);
 * `overlong` only where its counter exists (a gateway on an IPv6 underlay).
 */
export function dropTotals(counts: ReadonlyMap<string, GroupCount>): { in: Record<string, number>; out: Record<string, number> } {
  const of = (d: 'in' | 'out'): Record<string, number> =>
    Object.fromEntries(ALL_DROP_REASONS.filter((r) => r !== 'overlong' || counts.has(dropName(d, r))).map((r) => [r, counts.get(dropName(d, r))?.packets ?? 0]));
  return { in: of('in'), out: of('out') };
}
