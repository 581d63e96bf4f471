import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRoutes } from '../../../src/kernel/parse.js';
import { RouteTable, defaultRulesOnly } from '../../../src/node/routes.js';
import { fixture } from '../fixtures.js';

const f = (name: string): string => fixture(`iproute2/node/${name}`);

test('calico-style node: /32 host routes to veths, the node subnet, the default route, local addresses', () => {
  const t = new RouteTable(parseRoutes(f('routes-calico.json')));
  assert.deepEqual(t.lookup('10.244.1.11'), { dev: 'kmcv1', gateway: undefined, type: 'unicast' });
  assert.deepEqual(t.lookup('10.244.1.14'), { dev: 'kmcv4', gateway: undefined, type: 'unicast' });
  // A pod of another node matches only the default route: via a gateway, not local.
  assert.deepEqual(t.lookup('10.244.2.11'), { dev: 'kmcup', gateway: '172.31.1.1', type: 'unicast' });
  assert.deepEqual(t.lookup('10.244.1.15'), { dev: 'kmcup', gateway: '172.31.1.1', type: 'unicast' }, 'no /32: the default route');
  assert.deepEqual(t.lookup('172.31.1.9'), { dev: 'kmcup', gateway: undefined, type: 'unicast' }, 'the uplink /24');
  // The local table is consulted first: the node's own address and the subnet broadcast.
  assert.equal(t.lookup('172.31.1.2')?.type, 'local');
  assert.equal(t.lookup('172.31.1.255')?.type, 'broadcast');
  assert.equal(t.lookup('127.0.0.53')?.type, 'local');
  assert.equal(t.lookup('192.0.2.1')?.type, 'blackhole');
  assert.equal(t.lookup('not-an-ip'), undefined);
});

test('bridge-style node: the pod /24 via the bridge, the bridge address is local', () => {
  const t = new RouteTable(parseRoutes(f('routes-bridge.json')));
  assert.deepEqual(t.lookup('10.244.2.12'), { dev: 'kmcbr', gateway: undefined, type: 'unicast' });
  assert.deepEqual(t.lookup('10.244.2.200'), { dev: 'kmcbr', gateway: undefined, type: 'unicast' });
  assert.equal(t.lookup('10.244.2.1')?.type, 'local');
  assert.deepEqual(t.lookup('10.244.1.11'), { dev: 'kmcup', gateway: '172.31.2.1', type: 'unicast' });
});

test('longest prefix wins over order, then the lowest metric; no default route: no match', () => {
  const t = new RouteTable(
    parseRoutes(
      JSON.stringify([
        { dst: '10.0.0.0/8', dev: 'a', metric: 10 },
        { dst: '10.1.0.0/16', dev: 'b', metric: 200 },
        { dst: '10.1.0.0/16', dev: 'c', metric: 100 },
        { dst: '10.1.2.3', dev: 'd', table: 'default' },
        { dst: '10.9.0.0/16', type: 'throw' },
      ]),
    ),
  );
  assert.equal(t.lookup('10.1.2.3')?.dev, 'c', 'main before the default table, whatever the prefix');
  assert.equal(t.lookup('10.2.0.1')?.dev, 'a');
  assert.equal(t.lookup('10.9.0.1'), undefined, 'a throw route ends the table; nothing in default');
  assert.equal(t.lookup('11.0.0.1'), undefined);
});

test('defaultRulesOnly: the recorded default rules yes; a source rule, a fwmark rule or garbage no', () => {
  assert.equal(defaultRulesOnly(f('rules-default.json')), true);
  assert.equal(defaultRulesOnly('[{"priority":0,"src":"all","table":"local"},{"priority":32766,"src":"all","table":"main"}]'), true);
  assert.equal(defaultRulesOnly('[{"priority":0,"src":"all","table":"local"},{"priority":100,"src":"10.0.0.0","srclen":8,"table":"7"},{"priority":32766,"src":"all","table":"main"}]'), false);
  assert.equal(defaultRulesOnly('[{"priority":32766,"src":"all","fwmark":"0x1","table":"main"}]'), false);
  assert.equal(defaultRulesOnly('nope'), false);
});
