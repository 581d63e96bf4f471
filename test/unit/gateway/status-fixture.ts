/** A gateway's /status part, shared by the doctor and status-format tests. */
import type { GatewayStatus } from '../../../src/gateway/status-types.js';

export const gw = (over: Partial<GatewayStatus> = {}): GatewayStatus => ({
  service: 'app',
  interface: 'eth1',
  address: '192.168.250.1',
  mac: 'aa:bb:cc:00:00:01',
  ifindex: 7,
  active: true,
  activeGateway: '172.31.1.2',
  role: 'elected',
  snat: true,
  minTtl: 1,
  rate: 10000,
  rateTotal: 100000,
  groups: [
    { prefix: '239.10.0.0/16', direction: 'in' },
    { prefix: '224.0.0.251/32', direction: 'both' },
  ],
  joined: ['224.0.0.251', '239.10.0.1'],
  joinFailures: [],
  unjoined: { count: 0, groups: [], max: 1024 },
  gateways: [{ ip: '172.31.2.2', state: 'alive' }],
  table: { installed: true },
  traffic: [
    { group: '239.10.0.1', direction: 'in', datagrams: 500, bytes: 60000, dropped: { rate: 0, ttl: 0, loop: 0 } },
    { group: '224.0.0.251', direction: 'out', datagrams: 3, bytes: 300, dropped: { rate: 0, ttl: 0, loop: 2 } },
  ],
  drops: { in: { rate: 0, ttl: 0, loop: 0, total: 0, full: 0 }, out: { rate: 0, ttl: 0, loop: 2, total: 0, full: 0 } },
  ...over,
});
