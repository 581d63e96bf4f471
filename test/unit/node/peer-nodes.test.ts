import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../../src/log.js';
import type { ExpiryClock } from '../../../src/membership/expiry.js';
import { PeerTable } from '../../../src/membership/peers.js';
import { expirePeerNodes, resolveDomains } from '../../../src/node/peer-nodes.js';

const answers = (...lists: Array<string[] | Error>) => ({
  resolve: async (): Promise<string[]> => {
    const next = lists.length > 1 ? lists.shift()! : lists[0]!;
    if (next instanceof Error) throw next;
    return next;
  },
});

function domain(service: string, dns: { resolve(): Promise<string[]> }) {
  return {
    domain: { service, vni: 100, device: 'kmcvx100' },
    listed: [] as string[],
    table: new PeerTable({ selfIp: '172.31.1.1', expiryMs: 5000 }),
    gateways: new PeerTable({ selfIp: '172.31.1.1', expiryMs: 5000 }),
    dns,
  };
}

test('resolveDomains: member lists from each domain, peer nodes (this node left out) into both tables; a failure keeps the last list', async () => {
  const a = domain('app', answers(['10.244.1.11'], ['10.244.1.11'], new Error('SERVFAIL')));
  const b = domain('other', answers(['10.244.1.12']));
  const peers = answers(['172.31.1.1', '172.31.2.2'], new Error('timeout'));
  assert.equal(await resolveDomains([a, b], peers, '172.31.1.1', silentLogger()), true, 'first lists: changed');
  assert.deepEqual([a.listed, b.listed], [['10.244.1.11'], ['10.244.1.12']]);
  assert.deepEqual(a.table.targets(), ['172.31.2.2']);
  assert.deepEqual(b.gateways.targets(), ['172.31.2.2']);
  assert.equal(await resolveDomains([a, b], peers, '172.31.1.1', silentLogger()), false, 'the same lists; the peers lookup failed');
  assert.deepEqual(a.table.targets(), ['172.31.2.2'], 'the last peer list kept');
  assert.equal(await resolveDomains([a, b], undefined, '172.31.1.1', silentLogger()), false);
  assert.deepEqual(a.listed, ['10.244.1.11'], 'a failed domain lookup keeps its members');
});

test('expirePeerNodes: true when a peer node of any domain expired', () => {
  const tick = (expired: string[]) => ({ tick: () => ({ expired, suspects: undefined }) }) as unknown as ExpiryClock;
  const d = (expiry: ExpiryClock) => ({ domain: { service: 'app', vni: 100, device: 'kmcvx100' }, table: new PeerTable({ selfIp: '172.31.1.1', expiryMs: 5000 }), expiry });
  assert.equal(expirePeerNodes([d(tick([])), d(tick([]))], 1000, silentLogger()), false);
  assert.equal(expirePeerNodes([d(tick([])), d(tick(['172.31.2.2']))], 1000, silentLogger()), true);
});
