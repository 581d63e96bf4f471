/**
 * What every agent's Prometheus registry has, once: the registry, kmcast_build_info, the process
 * metrics (collectDefaultMetrics, under the agent's prefix), the readiness gauge and the key
 * reload counter (membership/keys.ts), and the constructors both metric classes use (a metric is
 * registered in this registry, nowhere else). The names stay each agent's own: a sidecar's and a
 * node agent's metrics are told apart by name on the same scrape (src/sidecar/metrics.ts,
 * src/node/metrics.ts).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERSION } from '../version.js';

export interface AgentMetricNames {
  /** The prefix of the process metrics (`kmcast_process_`, `kmcast_node_`). */
  readonly processPrefix: string;
  readonly ready: { readonly name: string; readonly help: string };
  readonly keyReloads: string;
}

export class AgentMetricsBase {
  readonly registry = new Registry();
  readonly buildInfo: Gauge<'version' | 'nodejs'>;
  readonly ready: Gauge;
  readonly keyReloads: Counter<'result'>;

  constructor(names: AgentMetricNames) {
    this.buildInfo = this.gauge('kmcast_build_info', 'Always 1; labels carry the kmcast and Node.js versions.', ['version', 'nodejs']);
    this.ready = this.gauge(names.ready.name, names.ready.help);
    this.keyReloads = this.counter(names.keyReloads, 'Changes of --key-file seen at run time, by result (ok: new keys in use; error: refused, old keys kept).', ['result']);
    this.buildInfo.labels(VERSION, process.version).set(1);
    collectDefaultMetrics({ register: this.registry, prefix: names.processPrefix });
  }

  /** A gauge in this registry. */
  protected gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], collect?: () => void): Gauge<L> {
    return new Gauge<L>({ name, help, labelNames, registers: [this.registry], ...(collect ? { collect } : {}) });
  }

  /** A counter in this registry. */
  protected counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], collect?: () => void): Counter<L> {
    return new Counter<L>({ name, help, labelNames, registers: [this.registry], ...(collect ? { collect } : {}) });
  }

  /** A histogram in this registry. */
  protected histogram(name: string, help: string, buckets: number[]): Histogram {
    return new Histogram({ name, help, buckets, registers: [this.registry] });
  }
}

/**
 * Increments of a counter another object keeps (a map of totals since start), brought into a
 * Prometheus counter at scrape time: `take(totals)` returns the increase of each key since the
 * last call. Pure.
 */
export class CounterDeltas {
  private readonly seen = new Map<string, number>();

  take(totals: Readonly<Record<string, number>>): Array<[key: string, delta: number]> {
    const out: Array<[string, number]> = [];
    for (const [k, n] of Object.entries(totals)) {
      const delta = n - (this.seen.get(k) ?? 0);
      if (delta > 0) out.push([k, delta]);
      this.seen.set(k, n);
    }
    return out;
  }
}
