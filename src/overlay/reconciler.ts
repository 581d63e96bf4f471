/**
 * Reads the actual data plane, plans the difference to the desired one and applies it. One
 * reconcile at a time; callers may call as often as they like (coalesced by the agent).
 */
import type { IpClient } from '../iproute2/client.js';
import type { Logger } from '../log.js';
import type { DesiredState } from './desired.js';
import type { ActualState, Plan, PlanOptions } from './plan.js';
import { isEmptyPlan, plan } from './plan.js';

export async function readActual(ip: IpClient, device: string): Promise<ActualState> {
  const [link, routes] = await Promise.all([ip.link(device), ip.routes()]);
  if (!link) return { link, addrs: [], routes, fdb: [], mdb: [] };
  const [addrs, fdb, mdb] = await Promise.all([ip.addrs(device), ip.fdb(device), ip.mdb(device)]);
  return { link, addrs, routes, fdb, mdb };
}

export interface ReconcileResult {
  readonly plan: Plan;
  /** Number of commands applied (0 when the kernel already matched). */
  readonly changes: number;
}

export class OverlayReconciler {
  constructor(
    private readonly ip: IpClient,
    private readonly log: Logger,
  ) {}

  async reconcile(desired: DesiredState, options: PlanOptions = {}): Promise<ReconcileResult> {
    const actual = await readActual(this.ip, desired.link.name);
    const p = plan(desired, actual, options);
    if (isEmptyPlan(p)) return { plan: p, changes: 0 };
    if (p.recreate) this.log.warn({ device: desired.link.name, reason: p.reason }, 'replacing overlay device');
    this.log.debug({ ip: p.ip, bridge: p.bridge }, 'applying overlay changes');
    await this.ip.ipBatch(p.ip);
    await this.ip.bridgeBatch(p.bridge);
    return { plan: p, changes: p.ip.length + p.bridge.length };
  }

  /** Removes the device (its routes, FDB and MDB entries go with it) and our blackhole route. */
  async teardown(device: string, blackhole: string | undefined): Promise<void> {
    const lines: string[] = [];
    if (await this.ip.link(device)) lines.push(`link del ${device}`);
    if (blackhole) {
      const routes = await this.ip.routes();
      if (routes.some((r) => r.type === 'blackhole' && r.dst.replace(/\/32$/, '') === blackhole)) {
        lines.push(`route del blackhole ${blackhole}/32`);
      }
    }
    await this.ip.ipBatch(lines);
  }
}
