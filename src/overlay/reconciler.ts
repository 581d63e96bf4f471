/**
 * Reads the actual data plane, plans the difference to the desired one and applies it. One
 * reconcile at a time; callers may call as often as they like (coalesced by the agent).
 */
import type { IpClient } from '../kernel/ip.js';
import type { Logger } from '../log.js';
import type { DesiredState } from './desired.js';
import { hostRouteDst } from './desired.js';
import type { ActualState, Plan, PlanOptions } from './plan.js';
import { entryCommands, isEmptyPlan, plan, underlayRouteRemoval } from './plan.js';

/** With `ipv6`, vx0's IPv6 addresses and the IPv6 local table are read too (dual-stack pods). */
export async function readActual(ip: IpClient, device: string, ipv6 = false): Promise<ActualState> {
  const [link, routes4, routes6] = await Promise.all([ip.link(device), ip.routes(), ipv6 ? ip.routes6() : []]);
  const routes = [...routes4, ...routes6];
  if (!link) return { link, addrs: [], routes, fdb: [], mdb: [] };
  const [addrs, addrs6, fdb, mdb] = await Promise.all([ip.addrs(device), ipv6 ? ip.addrs6(device) : [], ip.bridge.fdb(device), ip.bridge.mdb(device)]);
  return { link, addrs: [...addrs, ...addrs6], routes, fdb, mdb };
}

/** The desired state has IPv6 parts (an address or route). */
function wantsIpv6(d: DesiredState): boolean {
  return d.addrs.some((a) => a.includes(':')) || d.routes.some((r) => r.dst.includes(':'));
}

export interface ReconcileResult {
  readonly plan: Plan;
  /** Number of commands applied (0 when the kernel already matched). */
  readonly changes: number;
}

/** Same device, address and routes: only replication entries differ. */
function sameBase(a: DesiredState, b: DesiredState): boolean {
  return JSON.stringify([a.link, a.addrs, a.routes]) === JSON.stringify([b.link, b.addrs, b.routes]);
}

export class OverlayReconciler {
  /** What the last reconcile left the kernel with, for the fast path. */
  private applied: DesiredState | undefined;

  constructor(
    private readonly ip: IpClient,
    private readonly log: Logger,
  ) {}

  /**
   * Converges the data plane. With `fast`, when only replication entries changed since the last
   * reconcile, applies that delta in one `bridge -batch` without reading the kernel first (a
   * join reaches the senders' MDB sooner); any failure falls back to the full read-and-diff,
   * which also runs periodically and repairs whatever the fast path could not know about.
   */
  async reconcile(desired: DesiredState, options: PlanOptions & { fast?: boolean } = {}): Promise<ReconcileResult> {
    const last = this.applied;
    if (options.fast && last && sameBase(last, desired)) {
      const lines = entryCommands(desired.link.name, desired, last, options.prune ?? true);
      if (!lines.length) return { plan: { recreate: false, ip: [], bridge: [] }, changes: 0 };
      try {
        await this.ip.bridge.batch(lines);
        this.applied = desired;
        return { plan: { recreate: false, ip: [], bridge: lines }, changes: lines.length };
      } catch (err) {
        this.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'fast path failed; full reconcile');
      }
    }
    this.applied = undefined;
    const actual = await readActual(this.ip, desired.link.name, wantsIpv6(desired));
    const p = plan(desired, actual, options);
    if (isEmptyPlan(p)) {
      if (options.prune ?? true) this.applied = desired;
      return { plan: p, changes: 0 };
    }
    if (p.recreate) this.log.warn({ device: desired.link.name, reason: p.reason }, 'replacing overlay device');
    this.log.debug({ ip: p.ip, bridge: p.bridge }, 'applying overlay changes');
    await this.ip.ipBatch(p.ip);
    await this.ip.bridge.batch(p.bridge);
    // After a non-pruning pass the kernel holds more than `desired`: no fast path from there.
    if (options.prune ?? true) this.applied = desired;
    return { plan: p, changes: p.ip.length + p.bridge.length };
  }

  /**
   * Removes the device (its routes, FDB and MDB entries go with it), our blackhole route, and
   * with `underlay` (an IPv6 underlay) our MTU route on it (desired.ts, IPV6_UNDERLAY_MTU_ROUTE).
   */
  async teardown(device: string, blackhole: string | undefined, underlay?: string): Promise<void> {
    this.applied = undefined;
    const lines: string[] = [];
    if (await this.ip.link(device)) lines.push(`link del ${device}`);
    if (underlay) lines.push(...underlayRouteRemoval(await this.ip.routes6(), underlay));
    if (blackhole) {
      const routes = await this.ip.routes();
      if (routes.some((r) => r.type === 'blackhole' && hostRouteDst(r.dst) === blackhole)) {
        lines.push(`route del blackhole ${blackhole}/${blackhole.includes(':') ? 128 : 32}`);
      }
    }
    await this.ip.ipBatch(lines);
  }
}
