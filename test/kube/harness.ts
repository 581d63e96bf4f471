/**
 * Shared by the test files of the lab's Kubernetes cluster (`npm run test:kube`): each file brings
 * up its own cluster in `before` (a warm `lab up --kubernetes` of 2 nodes takes about 25 s) and
 * removes it in `after`; kubectl runs on the host against the lab's forwarded API server.
 */
import assert from 'node:assert/strict';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp } from '../../src/lab/lab.js';
import { buildSpec } from '../../src/lab/plan.js';
import type { AddLanOptions } from '../../src/lab/lan.js';
import type { Lab, NodeStyle } from '../../src/lab/types.js';
import { keepLab } from '../netns/harness.js';

export const runner = new ExecRunner();

export interface KubeLab {
  readonly id: string;
  lab?: Lab;
  upError?: unknown;
  upSeconds: number;
}

/**
 * Brings up a lab of `nodes` with Kubernetes (and the outside LAN `lan`, as `lab up --lan`); a
 * failure is kept for the first test to throw.
 */
export async function kubeLabUp(id: string, nodes: readonly NodeStyle[], lan?: AddLanOptions): Promise<KubeLab> {
  const k: KubeLab = { id, upSeconds: 0 };
  if (process.getuid?.() !== 0) return k;
  const started = Date.now();
  try {
    k.lab = await labUp(buildSpec({ id, nodes: [...nodes], podsPerNode: 0, mtu: 1500 }, { minPods: 0 }), {
      runner,
      kubernetes: true,
      ...(lan ? { lan } : {}),
      onProgress: (m) => process.stderr.write(`# lab ${id}: ${m}\n`),
    });
  } catch (err) {
    k.upError = err;
  }
  k.upSeconds = (Date.now() - started) / 1000;
  return k;
}

export async function kubeLabDown(k: KubeLab | undefined): Promise<void> {
  if (!k || process.getuid?.() !== 0 || keepLab()) return;
  await labDown(runner, { id: k.id });
}

/** The admin kubeconfig of a cluster that came up (throws the lab up error otherwise). */
export function kubeconfigOf(k: KubeLab | undefined): string {
  if (k?.upError) throw k.upError;
  assert.ok(k?.lab?.kube, 'the cluster did not come up');
  return k.lab.kube.kubeconfig;
}

/** kubectl against `config`; a non-zero exit throws with kubectl's stderr. */
export async function kubectlWith(config: string, args: readonly string[], input?: string, timeoutMs = 30_000): Promise<string> {
  const r = await runner.run(['kubectl', `--kubeconfig=${config}`, ...args], { allowFail: true, timeoutMs, ...(input === undefined ? {} : { input }) });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ').slice(0, 300)}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The lab node name (and Kubernetes node name) of node i. */
export function nodeName(id: string, i: number): string {
  return `kmc${id}-n${i}`;
}
