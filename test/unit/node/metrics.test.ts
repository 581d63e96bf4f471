import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DomainRuntime } from '../../../src/node/domain.js';
import type { LocalMember } from '../../../src/node/members.js';
import { NodeMetrics } from '../../../src/node/metrics.js';
import type { ReadChain } from '../../../src/node/nft.js';

const m = (ip: string, veth: string): LocalMember => ({ ip, veth, vethIndex: 4, netns: `kmc${veth}`, podIndex: 2 });
const chain = (name: string, packets: number): ReadChain => ({
  name,
  capture: true,
  policy: 'accept',
  dups: [],
  fwd: undefined,
  drop: false,
  packets,
  rules: 1,
  stale: false,
  tiers: [],
  spoofed: 0,
  overlongPackets: 0,
});

test("observeDomain: captured sums the members' capture chains, programmed splits the members, peers by state", async () => {
  const metrics = new NodeMetrics();
  const d = {
    domain: { service: 'app', vni: 100, device: 'kmcvx100' },
    local: new Map([
      ['10.244.1.11', m('10.244.1.11', 'kmcv1')],
      ['10.244.1.12', m('10.244.1.12', 'kmcv2')],
    ]),
    table: { status: () => [{ state: 'alive' }, { state: 'alive' }, { state: 'expired' }] },
    refused: new Map([['10.244.1.13', { podIp: '10.244.1.13', reason: 'multiple_domains', hostVeth: 'kmcv3', domains: ['app', 'other'] }]]),
  } as unknown as DomainRuntime;
  const back = new Map([
    ['cap-kmcv1', chain('cap-kmcv1', 5)],
    ['cap-kmcv2', chain('cap-kmcv2', 7)],
    ['vx-100', chain('vx-100', 41)],
    ['dl-100', chain('dl-100', 40)],
  ]);
  metrics.observeDomain(d, back, (x) => x.veth === 'kmcv1');
  metrics.observeControl({ counters: { ok: 9, bad_mac: 1 }, sendCounters: { sent: 12, failed: 2 } });
  const text = await metrics.registry.metrics();
  assert.match(text, /kmcast_node_captured_packets\{domain="app"\} 12/);
  assert.match(text, /kmcast_node_received_packets\{domain="app"\} 40/);
  assert.match(text, /kmcast_node_local_members\{domain="app",programmed="true"\} 1/);
  assert.match(text, /kmcast_node_local_members\{domain="app",programmed="false"\} 1/);
  assert.match(text, /kmcast_node_peers\{domain="app",state="alive"\} 2/);
  assert.match(text, /kmcast_node_peers\{domain="app",state="pending"\} 0/);
  assert.match(text, /kmcast_node_refused_pods\{domain="app",reason="multiple_domains"\} 1/);
  assert.match(text, /kmcast_node_control_received_datagrams\{result="bad_mac"\} 1/);
  assert.match(text, /kmcast_node_control_sent_datagrams\{outcome="failed"\} 2/);
  // No read-back (nft failed): the counters read 0, the members and peers still count.
  metrics.observeDomain(d, undefined, () => true);
  assert.match(await metrics.registry.metrics(), /kmcast_node_captured_packets\{domain="app"\} 0/);
});
