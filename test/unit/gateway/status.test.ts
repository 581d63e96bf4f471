import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateGateway } from '../../../src/node/doctor.js';
import { gw } from './status-fixture.js';

test('doctor: the active gateway reports joins and counts; rate drops and failed joins warn', () => {
  const ok = evaluateGateway(gw());
  assert.equal(ok.status, 'OK');
  assert.match(ok.detail, /active; joined 224\.0\.0\.251,239\.10\.0\.1; in 500 datagrams, out 3; dropped: rate 0, ttl 0, loop 2/);
  const warn = evaluateGateway(gw({ traffic: [{ group: '239.10.0.1', direction: 'in', datagrams: 5, bytes: 1, dropped: { rate: 9 } }], joinFailures: [{ group: '239.10.0.2', error: 'ENOBUFS' }] }));
  assert.equal(warn.status, 'WARN');
  assert.match(warn.detail, /joins failed: 239\.10\.0\.2 \(ENOBUFS\); datagrams over --gateway-rate 10000\/s were dropped/);
  assert.equal(evaluateGateway(gw({ active: false, role: 'lower-ip-alive', activeGateway: '172.31.0.2' })).detail, 'standby: 172.31.0.2 is the active gateway');
  assert.equal(evaluateGateway(gw({ active: false, role: 'settling' })).status, 'WARN');
  const bad = evaluateGateway(gw({ table: { installed: false, lastError: 'Error: No such file or directory' } }));
  assert.equal(bad.status, 'FAIL');
  assert.match(bad.detail, /gateway table not installed: Error: No such file/);
});
