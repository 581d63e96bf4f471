import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { mergeNodeOptions, validateNodeConfig } from '../../../src/node/config.js';

const base = { peers: '172.31.1.2,172.31.2.2', service: ['app=100'] };

function refused(raw: Record<string, unknown>, flag: string, pattern: RegExp, opts: { gatewayRequired?: boolean } = {}): void {
  assert.throws(
    () => validateNodeConfig(mergeNodeOptions(raw as never, {}), opts),
    (err: unknown) => err instanceof ConfigError && err.exitCode === 2 && err.message.startsWith(flag) && pattern.test(err.message),
    `expected ${flag} to be refused with ${String(pattern)}`,
  );
}

test('no --gateway-interface: no gateway; kmcast gateway requires it', () => {
  assert.equal(validateNodeConfig(mergeNodeOptions(base, {})).gateway, undefined);
  refused(base, '--gateway-interface', /kmcast gateway needs the interface/, { gatewayRequired: true });
  refused({ ...base, gatewayGroup: ['239.1.1.1=in'] }, '--gateway-group', /needs --gateway-interface/);
  refused({ ...base, gatewayRate: '5' }, '--gateway-rate', /needs --gateway-interface/);
});

test('a gateway: defaults, flags and KMCAST_* (the group list comma separated)', () => {
  const c = validateNodeConfig(mergeNodeOptions({ ...base, gatewayInterface: 'eth1', gatewayGroup: ['239.10.0.0/16=in'] }, {}));
  assert.deepEqual(
    { ...c.gateway, groups: c.gateway?.groups.map((g) => g.prefix) },
    { interface: 'eth1', service: 'app', groups: ['239.10.0.0/16'], snat: true, minTtl: 1, rate: 10000, rateTotal: 100000, maxJoins: 1024 },
  );
  const e = validateNodeConfig(
    mergeNodeOptions(base, {
      KMCAST_GATEWAY_INTERFACE: 'eth1',
      KMCAST_GATEWAY_GROUP: '224.0.0.251=both,239.2.2.2=out',
      KMCAST_GATEWAY_SNAT: 'off',
      KMCAST_GATEWAY_RATE: '0',
      KMCAST_GATEWAY_MIN_TTL: '2',
    }),
  );
  assert.deepEqual(
    e.gateway?.groups.map((g) => `${g.prefix}=${g.direction}`),
    ['224.0.0.251/32=both', '239.2.2.2/32=out'],
  );
  assert.equal(e.gateway?.snat, false);
  assert.equal(e.gateway?.rate, 0);
  assert.equal(e.gateway?.rateTotal, 0, 'no per-group rate: no derived total either');
  assert.equal(e.gateway?.minTtl, 2);
  const t = validateNodeConfig(
    mergeNodeOptions({ ...base, gatewayInterface: 'eth1', gatewayGroup: ['239.10.0.0/16=in'], gatewayRate: '100' }, { KMCAST_GATEWAY_RATE_TOTAL: '250', KMCAST_GATEWAY_MAX_JOINS: '8' }),
  );
  assert.equal(t.gateway?.rateTotal, 250);
  assert.equal(t.gateway?.maxJoins, 8);
  const d = validateNodeConfig(mergeNodeOptions({ ...base, gatewayInterface: 'eth1', gatewayGroup: ['239.10.0.0/16=in'], gatewayRate: '100' }, {}));
  assert.equal(d.gateway?.rateTotal, 1000, 'the default total is ten groups at the per-group rate');
});

test('bad gateway flags name the flag', () => {
  const gw = { ...base, gatewayInterface: 'eth1', gatewayGroup: ['239.1.1.1=in'] };
  refused({ ...base, gatewayInterface: 'eth1' }, '--gateway-group', /nothing would cross/);
  refused({ ...gw, gatewayInterface: 'no such if!' }, '--gateway-interface', /not an interface name/);
  refused({ ...gw, gatewaySnat: 'yes' }, '--gateway-snat', /must be on or off/);
  refused({ ...gw, gatewayRate: '-1' }, '--gateway-rate', /integer between 0 and/);
  refused({ ...gw, gatewayRateTotal: 'lots' }, '--gateway-rate-total', /integer between 0 and/);
  refused({ ...gw, gatewayMaxJoins: '0' }, '--gateway-max-joins', /integer between 1 and 16384/);
  refused({ ...base, gatewayRateTotal: '5' }, '--gateway-rate-total', /needs --gateway-interface/);
  refused({ ...gw, gatewayMinTtl: '0' }, '--gateway-min-ttl', /integer between 1 and 255/);
  refused({ ...gw, service: ['a=1', 'b=2'] }, '--gateway-service', /serves 2 domains \(a, b\); say which one/);
  refused({ ...gw, gatewayService: 'c' }, '--gateway-service', /"c" is not one of the --service domains/);
  assert.equal(validateNodeConfig(mergeNodeOptions({ ...gw, service: ['a=1', 'B=2'], gatewayService: 'b' }, {})).gateway?.service, 'B');
});

test('IPv6 groups beside IPv4 ones, from the flag and from KMCAST_GATEWAY_GROUP; a bad one names the flag', () => {
  const e = validateNodeConfig(mergeNodeOptions(base, { KMCAST_GATEWAY_INTERFACE: 'eth1', KMCAST_GATEWAY_GROUP: 'ff05::1:0/112=in,ff02::fb=in,FF05::2:2=out,239.2.2.2=out' }));
  assert.deepEqual(
    e.gateway?.groups.map((g) => `${g.prefix}=${g.direction}`),
    ['ff05::1:0/112=in', 'ff02::fb/128=in', 'ff05::2:2/128=out', '239.2.2.2/32=out'],
  );
  refused({ ...base, gatewayInterface: 'eth1', gatewayGroup: ['ff02::fb=both'] }, '--gateway-group', /inbound only/);
});
