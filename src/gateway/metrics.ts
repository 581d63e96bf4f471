/**
 * The gateway's Prometheus metrics, on the node agent's registry. The per-group series mirror the
 * kernel's per-element counters (plus those of tables replaced since start), so they are set from
 * a read at each scrape. Labels are bounded: at most MAX_GROUP_SERIES groups per direction get
 * their own series (the busiest), the rest add up under group="other".
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { GatewayTraffic } from './status-types.js';

export const MAX_GROUP_SERIES = 256;

export class GatewayMetrics {
  readonly active: Gauge<'domain'>;
  readonly joined: Gauge<'domain'>;
  readonly unjoined: Gauge<'domain'>;
  readonly datagrams: Counter<'domain' | 'group' | 'direction'>;
  readonly bytes: Counter<'domain' | 'group' | 'direction'>;
  readonly dropped: Counter<'domain' | 'group' | 'direction' | 'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.active = new Gauge({ name: 'kmcast_gateway_active', help: '1 while this gateway is the elected one of its domain and forwards.', labelNames: ['domain'] as const, registers });
    this.joined = new Gauge({ name: 'kmcast_gateway_joined_groups', help: 'Groups the gateway has joined on its outside interface.', labelNames: ['domain'] as const, registers });
    this.unjoined = new Gauge({
      name: 'kmcast_gateway_unjoined_groups',
      help: 'Inbound groups members joined that the gateway does not join (over --gateway-max-joins).',
      labelNames: ['domain'] as const,
      registers,
    });
    this.datagrams = new Counter({
      name: 'kmcast_gateway_datagrams_total',
      help: 'Datagrams the gateway let cross, by group and direction (in: outside to pods).',
      labelNames: ['domain', 'group', 'direction'] as const,
      registers,
    });
    this.bytes = new Counter({
      name: 'kmcast_gateway_bytes_total',
      help: 'Bytes (layer 3) the gateway let cross, by group and direction.',
      labelNames: ['domain', 'group', 'direction'] as const,
      registers,
    });
    this.dropped = new Counter({
      name: 'kmcast_gateway_dropped_total',
      help: 'Datagrams of configured groups the gateway dropped, by reason: rate, ttl, loop (per group), total (over --gateway-rate-total), full (the per-group meter had no room) and overlong (inbound frames longer than an IPv6 underlay carries), the last three with group="any".',
      labelNames: ['domain', 'group', 'direction', 'reason'] as const,
      registers,
    });
  }

  setTraffic(domain: string, rows: readonly GatewayTraffic[], drops?: { in: Readonly<Record<string, number>>; out: Readonly<Record<string, number>> }): void {
    this.datagrams.reset();
    this.bytes.reset();
    this.dropped.reset();
    for (const direction of ['in', 'out'] as const) {
      const mine = rows.filter((r) => r.direction === direction).sort((a, b) => b.datagrams - a.datagrams);
      for (const [i, r] of mine.entries()) {
        const group = i < MAX_GROUP_SERIES ? r.group : 'other';
        if (r.datagrams) this.datagrams.labels(domain, group, direction).inc(r.datagrams);
        if (r.bytes) this.bytes.labels(domain, group, direction).inc(r.bytes);
        for (const [reason, n] of Object.entries(r.dropped)) if (n) this.dropped.labels(domain, group, direction, reason).inc(n);
      }
      for (const reason of ['total', 'full', 'overlong']) {
        const n = drops?.[direction][reason] ?? 0;
        if (n) this.dropped.labels(domain, 'any', direction, reason).inc(n);
      }
    }
  }
}
