/**
 * Builds the lab's outside LAN (lan-plan.ts) and keeps the lab's state file in step, so that
 * `lab status`, `lab exec h1` and `lab down` know it. Removal is labDown's: the switch and the
 * hosts are lab namespaces (kmc<id>-lan, kmc<id>-h<j>).
 */
import { ConfigError } from '../errors.js';
import type { Runner } from '../kernel/runner.js';
import type { Family } from '../net/groups.js';
import type { LabCommand } from './plan.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { LAN_BRIDGE, LAN_SNOOPING_SETTLE_MS, checkLanNode, lanIpv6Of, lanNodeCommands, lanPortCommands, lanSwitchCommands, parseLanMdb, planLan, planLanNode } from './lan-plan.js';
import type { LanMembership } from './lan-plan.js';
import { saveLab } from './state.js';
import type { Lab, LabLan, LabLanNode } from './types.js';

export interface AddLanOptions {
  /** Lab node indexes to attach (each gets `kmclan`). */
  readonly nodes: readonly number[];
  /** LAN hosts, default 2. */
  readonly hosts?: number;
}

async function runAll(runner: Runner, cmds: readonly LabCommand[]): Promise<void> {
  for (const c of cmds) await runner.run(c.argv, { netns: c.netns });
}

/** Builds the LAN (switch, hosts, node attachments) and records it in the lab's state; resolves once the switch snoops. */
export async function addLan(lab: Lab, runner: Runner, opts: AddLanOptions): Promise<LabLan> {
  if (lab.lan) throw new ConfigError(`add a LAN to lab ${lab.spec.id}: it has one (${lab.lan.netns}); attach more nodes with attachLanNode`);
  const lan = planLan(lab.spec, opts);
  // Recorded first: a build that fails half way is still found by status and removed by down.
  lab.lan = lan;
  await saveLab(lab);
  await runAll(runner, lanSwitchCommands(lab.spec.id, lab.spec.mtu, lanIpv6Of(lab.spec)));
  const querierSince = Date.now();
  await runAll(runner, lanPortCommands(lab.spec, lan));
  await sleep(Math.max(0, LAN_SNOOPING_SETTLE_MS - (Date.now() - querierSince)));
  return lan;
}

/** Attaches one more lab node to the LAN (e.g. a second gateway node). */
export async function attachLanNode(lab: Lab, runner: Runner, node: number): Promise<LabLanNode> {
  const lan = lab.lan;
  if (!lan) throw new ConfigError(`attach node ${node} to the LAN of lab ${lab.spec.id}: the lab has no LAN; add one first (lab up --lan NODES)`);
  checkLanNode(node, lab.spec.nodes.length);
  if (lan.nodes.some((n) => n.node === node)) throw new ConfigError(`attach node ${node} to the LAN of lab ${lab.spec.id}: it is attached already`);
  await runAll(runner, lanNodeCommands(lab.spec.id, node, lab.spec.mtu, lanIpv6Of(lab.spec)));
  const attached = planLanNode(lab.spec.id, node, lanIpv6Of(lab.spec));
  lan.nodes.push(attached);
  await saveLab(lab);
  return attached;
}

/**
 * What the switch has learnt from IGMP (`family` 4) or MLD (6) reports: which port joined which
 * group (a node's port is `kmcl<i>`, a host's `kmch<j>`). A gateway's joins show up here as its
 * node port.
 */
export async function lanMemberships(lab: Lab, runner: Runner, family: Family = 4): Promise<LanMembership[]> {
  if (!lab.lan) throw new ConfigError(`read the LAN switch of lab ${lab.spec.id}: the lab has no LAN`);
  const r = await runner.run(['bridge', '-j', 'mdb', 'show', 'dev', LAN_BRIDGE], { netns: lab.lan.netns });
  return parseLanMdb(r.stdout, family);
}
