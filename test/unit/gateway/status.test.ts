import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateGateway } from '../../../src/node/doctor.js';
import { gw } from './status-fixture.js';

const NO_DROPS = { rate: 0, ttl: 0, loop: 0, total: 0, full: 0 };

test('doctor: the active gateway reports joins and counts; rate drops and failed joins warn', () => {
  const ok = evaluateGateway(gw());
  assert.equal(ok.status, 'OK');
  assert.match(ok.detail, /active; joined 224\.0\.0\.251,239\.10\.0\.1; in 500 datagrams, out 3; dropped: rate 0, total 0, full 0, ttl 0, loop 2/);
  const warn = evaluateGateway(gw({ drops: { in: { ...NO_DROPS, rate: 9 }, out: NO_DROPS }, joinFailures: [{ group: '239.10.0.2', error: 'ENOBUFS' }] }));
  assert.equal(warn.status, 'WARN');
  assert.match(warn.detail, /joins failed: 239\.10\.0\.2 \(ENOBUFS\); datagrams over --gateway-rate 10000\/s per group were dropped/);
  assert.equal(evaluateGateway(gw({ active: false, role: 'lower-ip-alive', activeGateway: '172.31.0.2' })).detail, 'standby: 172.31.0.2 is the active gateway');
  assert.equal(evaluateGateway(gw({ active: false, role: 'settling' })).status, 'WARN');
  const bad = evaluateGateway(gw({ table: { installed: false, lastError: 'Error: No such file or directory' } }));
  assert.equal(bad.status, 'FAIL');
  assert.match(bad.detail, /gateway table not installed: Error: No such file/);
});

test('doctor: drops over the total rate, of a full meter, and groups not joined warn and name their flag', () => {
  const storm = evaluateGateway(gw({ drops: { in: { ...NO_DROPS, total: 40, full: 3 }, out: NO_DROPS } }));
  assert.equal(storm.status, 'WARN');
  assert.match(storm.detail, /dropped: rate 0, total 40, full 3/);
  assert.match(storm.detail, /over --gateway-rate-total 100000\/s/);
  assert.match(storm.detail, /more distinct groups than the per-group meter holds/);
  const starved = evaluateGateway(gw({ unjoined: { count: 40, groups: ['239.10.0.9', '239.10.0.10'], max: 1024 } }));
  assert.equal(starved.status, 'WARN');
  assert.match(starved.detail, /40 inbound group\(s\) members joined are not joined on eth1 \(over --gateway-max-joins 1024\): 239\.10\.0\.9,239\.10\.0\.10,\.\.\./);
  assert.match(starved.fix ?? '', /--gateway-max-joins/);
});
