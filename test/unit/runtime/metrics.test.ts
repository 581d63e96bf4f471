import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentMetrics } from '../../../src/sidecar/metrics.js';
import { NodeMetrics } from '../../../src/node/metrics.js';
import { CounterDeltas } from '../../../src/runtime/metrics.js';

test('CounterDeltas: the increase of each total since the last take; nothing for a total that did not grow', () => {
  const d = new CounterDeltas();
  assert.deepEqual(d.take({ ok: 3, bad_mac: 0 }), [['ok', 3]]);
  assert.deepEqual(d.take({ ok: 3, bad_mac: 2 }), [['bad_mac', 2]]);
  assert.deepEqual(d.take({ ok: 5, bad_mac: 2, replay: 1 }), [
    ['ok', 2],
    ['replay', 1],
  ]);
  assert.deepEqual(d.take({ ok: 5 }), []);
});

test("both agents' registries: the shared metrics under each agent's names, nothing registered twice", async () => {
  const names = async (m: AgentMetrics | NodeMetrics): Promise<string[]> => (await m.registry.getMetricsAsJSON()).map((x) => x.name);
  const sidecar = await names(new AgentMetrics());
  const node = await names(new NodeMetrics());
  for (const n of ['kmcast_build_info', 'kmcast_agent_ready', 'kmcast_membership_key_reloads_total', 'kmcast_process_process_cpu_seconds_total']) assert.ok(sidecar.includes(n), n);
  for (const n of ['kmcast_build_info', 'kmcast_node_ready', 'kmcast_node_key_reloads_total', 'kmcast_node_process_cpu_seconds_total']) assert.ok(node.includes(n), n);
  assert.equal(new Set(sidecar).size, sidecar.length);
  assert.equal(new Set(node).size, node.length);
  assert.ok(!node.some((n) => n.startsWith('kmcast_agent_')) && !sidecar.some((n) => n.startsWith('kmcast_node_')), "neither agent's names in the other's registry");
});

test('the sidecar brings the control channel counters over as increments at scrape time', async () => {
  const m = new AgentMetrics();
  let totals: Record<string, number> = { ok: 2 };
  m.followControlCounters(() => totals);
  const value = async (): Promise<string> =>
    (await m.registry.getSingleMetricAsString('kmcast_control_messages_total'))
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join(' ');
  assert.equal(await value(), 'kmcast_control_messages_total{result="ok"} 2');
  totals = { ok: 5, replay: 1 };
  assert.equal(await value(), 'kmcast_control_messages_total{result="ok"} 5 kmcast_control_messages_total{result="replay"} 1');
});
