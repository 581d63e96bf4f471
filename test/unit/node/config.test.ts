import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../../src/errors.js';
import { checkKeyPolicy, defaultVni, deviceFor, keyPolicyError, mergeNodeOptions, nodeClusterLabel, parseDomains, validateNodeConfig } from '../../../src/node/config.js';

const base = { peers: '172.31.1.2,172.31.2.2' };

function configError(fn: () => unknown, flag: string): void {
  assert.throws(fn, (err: unknown) => err instanceof ConfigError && err.exitCode === 2 && err.message.startsWith(flag), `expected a ConfigError naming ${flag}`);
}

test('domains: NAME or NAME=VNI, repeatable and comma lists, each with its own device', () => {
  const d = parseDomains(['app-a=100', 'app-b.ns.svc.cluster.local,app-c=7']);
  assert.deepEqual(d[0], { service: 'app-a', vni: 100, device: 'kmcvx100' });
  assert.equal(d[1]!.vni, defaultVni('app-b.ns.svc.cluster.local'));
  assert.equal(d[2]!.device, 'kmcvx7');
  assert.ok(deviceFor(16_777_215).length <= 15, 'the largest VNI still fits IFNAMSIZ');
});

test('the derived VNI is deterministic, outside the hand-picked range, and case/dot insensitive', () => {
  const v = defaultVni('app.default.svc.cluster.local');
  assert.equal(v, defaultVni('APP.default.svc.cluster.local.'));
  assert.ok(v >= 4096 && v <= 16_777_215);
  assert.notEqual(v, defaultVni('other.default.svc.cluster.local'));
});

test('two domains with one VNI, a repeated name, a bad VNI or name: exit 2 naming --service', () => {
  configError(() => parseDomains(['a=5', 'b=5']), '--service');
  configError(() => parseDomains(['a', 'a=9']), '--service');
  configError(() => parseDomains(['a=0']), '--service');
  configError(() => parseDomains(['a=16777216']), '--service');
  configError(() => parseDomains(['a=x']), '--service');
  configError(() => parseDomains(['-bad-']), '--service');
});

test('defaults match the contract ports; env vars fill in and flags win', () => {
  const c = validateNodeConfig(mergeNodeOptions({ ...base, service: ['app=100'] }, {}));
  assert.equal(c.vxlanPort, 7472);
  assert.equal(c.controlPort, 7473);
  assert.deepEqual(c.http, { host: '0.0.0.0', port: 9471 });
  assert.equal(c.resyncMs, 10_000);
  const e = validateNodeConfig(mergeNodeOptions({}, { KMCAST_SERVICE: 'a=1,b=2', KMCAST_PEERS_SERVICE: 'kmcast-node.kmcast-system.svc.cluster.local', KMCAST_CONTROL_PORT: '9000' }));
  assert.deepEqual(
    e.domains.map((d) => d.vni),
    [1, 2],
  );
  assert.equal(e.peersService, 'kmcast-node.kmcast-system.svc.cluster.local');
  assert.equal(e.controlPort, 9000);
  const f = validateNodeConfig(mergeNodeOptions({ service: ['x=3'], peers: '10.0.0.1' }, { KMCAST_SERVICE: 'a=1' }));
  assert.deepEqual(
    f.domains.map((d) => d.service),
    ['x'],
  );
});

test('every bad flag names itself', () => {
  const ok = { ...base, service: ['a=1'] };
  configError(() => validateNodeConfig(mergeNodeOptions({ service: ['a=1'] }, {})), '--peers-service');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, peers: '1.2.3' }, {})), '--peers');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, nodeIp: 'x' }, {})), '--node-ip');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, vxlanPort: '7473' }, {})), '--control-port');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, http: 'nope:x' }, {})), '--http');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, interface: 'a b' }, {})), '--interface');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, resyncInterval: '5' }, {})), '--resync-interval');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, dnsServer: 'dns' }, {})), '--dns-server');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, logLevel: 'loud' }, {})), '--log-level');
});

test('the control label of a domain is node:<vni>/<service>, never a sidecar label', () => {
  assert.equal(nodeClusterLabel({ service: 'app', vni: 100, device: 'kmcvx100' }), 'node:100/app');
  const long = nodeClusterLabel({ service: 'a'.repeat(300), vni: 1, device: 'kmcvx1' });
  assert.match(long, /^node:1\/sha256:[0-9a-f]{64}$/);
});

test('no --key-file: refused (exit 2 naming --key-file) unless --insecure-no-key, from a flag or the env', () => {
  const ok = { ...base, service: ['app=100'] };
  const keyless = validateNodeConfig(mergeNodeOptions(ok, {}));
  assert.equal(keyless.insecureNoKey, false);
  configError(() => checkKeyPolicy(keyless), '--key-file');
  assert.match(keyPolicyError(keyless)!, /--insecure-no-key/);
  assert.equal(keyPolicyError(validateNodeConfig(mergeNodeOptions({ ...ok, keyFile: '/etc/kmcast/key/key' }, {}))), undefined);
  assert.equal(keyPolicyError(validateNodeConfig(mergeNodeOptions({ ...ok, insecureNoKey: true }, {}))), undefined);
  assert.equal(validateNodeConfig(mergeNodeOptions(ok, { KMCAST_INSECURE_NO_KEY: 'true' })).insecureNoKey, true);
  assert.equal(validateNodeConfig(mergeNodeOptions(ok, { KMCAST_INSECURE_NO_KEY: '0' })).insecureNoKey, false);
  configError(() => validateNodeConfig(mergeNodeOptions(ok, { KMCAST_INSECURE_NO_KEY: 'maybe' })), '--insecure-no-key');
});

test('--status-http: off by default, [IP]:PORT, never the --http socket', () => {
  const ok = { ...base, service: ['app=100'] };
  assert.equal(validateNodeConfig(mergeNodeOptions(ok, {})).statusHttp, undefined);
  assert.deepEqual(validateNodeConfig(mergeNodeOptions({ ...ok, statusHttp: '127.0.0.1:9474' }, {})).statusHttp, { host: '127.0.0.1', port: 9474 });
  assert.deepEqual(validateNodeConfig(mergeNodeOptions({ ...ok, http: '10.0.0.5:9471', statusHttp: '127.0.0.1:9471' }, {})).statusHttp, { host: '127.0.0.1', port: 9471 });
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, statusHttp: '127.0.0.1:9471' }, {})), '--status-http');
  configError(() => validateNodeConfig(mergeNodeOptions({ ...ok, statusHttp: 'nope:x' }, {})), '--status-http');
});

test('no domain yet: the agent starts idle (deploy/node before the first app); a gateway still needs one', () => {
  const c = validateNodeConfig({ ...base });
  assert.deepEqual(c.domains, []);
  configError(() => validateNodeConfig({ ...base, gatewayInterface: 'eth1', gatewayGroup: ['224.0.0.251=both'] }), '--service');
});
