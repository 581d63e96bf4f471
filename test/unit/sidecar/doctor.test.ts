import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultRouteDevice, doctorExitCode, evaluate, expectedPeers, formatDoctor, gatherFacts, linkFactsOf, parseKernelVersion, procSysReadOnly } from '../../../src/sidecar/doctor.js';
import { capEffOf, effectiveRpFilter, hasCapability } from '../../../src/sidecar/host.js';
import type { CheckResult, DoctorDeps, DoctorFacts, DoctorOptions } from '../../../src/sidecar/doctor.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { doctorOptions } from '../../../src/cli/doctor.js';
import { ConfigError } from '../../../src/errors.js';
import { agentStatusFixture } from '../../support/agent-status.js';

const OPTS: DoctorOptions = { device: 'vx0', peers: [], controlPort: 7470, statusUrl: 'http://127.0.0.1:9470' };

const ADDR_ETH0 = JSON.stringify([
  {
    ifname: 'eth0',
    mtu: 1450,
    linkinfo: { info_kind: 'veth' },
    addr_info: [
      { family: 'inet', local: '10.244.1.11', prefixlen: 32 },
      { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
    ],
  },
]);
const ADDR_VX0 = JSON.stringify([{ ifname: 'vx0', mtu: 1400, linkinfo: { info_kind: 'vxlan' }, addr_info: [] }]);
const MOUNTINFO_RO = ['620 610 0:60 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw', '640 620 0:60 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw'].join('\n');

const agentStatus = agentStatusFixture;

/** Deps answering from tables; records which files were opened, names resolved, peers probed. */
function fakeDeps(runner: FakeRunner, over: Partial<DoctorDeps> & { files?: Record<string, string> } = {}) {
  const log = { probes: [] as string[], resolved: [] as string[], writes: [] as string[] };
  const files: Record<string, string> = {
    '/proc/self/status': 'Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t00000000a80435fb\n',
    '/proc/self/mountinfo': MOUNTINFO_RO,
    '/proc/sys/net/ipv4/conf/all/rp_filter': '1\n',
    '/proc/sys/net/ipv4/conf/default/rp_filter': '1\n',
    '/proc/sys/net/ipv4/conf/eth0/rp_filter': '0\n',
    '/proc/sys/net/ipv4/conf/vx0/rp_filter': '2\n',
    ...over.files,
  };
  const deps: DoctorDeps = {
    runner,
    readFile: async (p) => {
      const v = files[p];
      if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return await Promise.resolve(v);
    },
    probeWrite: async (p) => {
      log.writes.push(p);
      throw await Promise.resolve(Object.assign(new Error('read-only'), { code: 'EROFS' }));
    },
    resolve4: async (name) => {
      log.resolved.push(name);
      return await Promise.resolve(['10.244.1.11', '10.244.2.10', '10.244.3.12']);
    },
    probeUdp: async (ip, port) => {
      log.probes.push(`${ip}:${port}`);
      return await Promise.resolve(ip === '10.244.3.12' ? 'ECONNREFUSED' : null);
    },
    fetchStatus: async (url) => {
      throw await Promise.resolve(new Error(`read agent status from ${url}/status: ECONNREFUSED`));
    },
    uid: () => 0,
    kernelRelease: () => '6.12.0-amd64',
    randomSuffix: () => 'abc123',
    ...over,
  };
  return { deps, log };
}

function standardRunner(): FakeRunner {
  return new FakeRunner()
    .on('ip -V', { stdout: 'ip utility, iproute2-6.15.0, libbpf 1.1.2\n' })
    .on('bridge mdb help', { code: 255, stderr: 'Usage: bridge mdb { add | del } ... [ dst IPADDR ]\n' })
    .on('ip -j -4 route show default', { stdout: '[{"dst":"default","gateway":"169.254.1.1","dev":"eth0","flags":[]}]' })
    .on('ip -j -d addr show dev eth0', { stdout: ADDR_ETH0 })
    .on('ip -j -d addr show dev vx0', { code: 1, stderr: 'Device "vx0" does not exist.\n' });
}

describe('gatherFacts', () => {
  it('runs exactly these commands and reads the facts from their output', async () => {
    const runner = standardRunner();
    const { deps, log } = fakeDeps(runner);
    const f = await gatherFacts({ ...OPTS, service: 'app.default.svc.cluster.local', peers: ['10.244.4.4'] }, deps);
    assert.deepEqual(runner.commands(), [
      'ip link add kmcdocabc123 type vxlan id 16777001 dstport 7479 nolearning',
      'bridge mdb add dev kmcdocabc123 port kmcdocabc123 grp 239.255.0.1 permanent dst 192.0.2.1',
      'ip link del dev kmcdocabc123',
      'ip -V',
      'bridge mdb help',
      'ip -j -4 route show default',
      'ip -j -d addr show dev eth0',
      'ip -j -d addr show dev vx0',
      'ss -H -a -n -p -u -w',
    ]);
    assert.ok(
      runner.calls.every((c) => c.netns === undefined),
      'doctor stays in its own namespace',
    );
    assert.equal(f.capEff, '00000000a80435fb');
    assert.deepEqual(f.vxlanProbe, { link: 'kmcdocabc123', ok: true });
    assert.deepEqual(f.mdbProbe, { ok: true });
    assert.match(f.mdbHelp ?? '', /dst IPADDR/);
    assert.deepEqual(f.underlay, { name: 'eth0', exists: true, mtu: 1450, kind: 'veth', ipv4: ['10.244.1.11'], from: 'default-route' });
    assert.equal(f.device.exists, false);
    assert.deepEqual(f.rpFilter, { all: 1, default: 1, underlay: 0, device: null });
    assert.deepEqual(f.procSys, { writable: false, error: 'EROFS', readOnlyMount: true });
    assert.deepEqual(log.writes, ['/proc/sys/net/ipv4/conf/all/rp_filter']);
    assert.equal(f.ownIp, '10.244.1.11');
    assert.deepEqual(f.dns, {
      service: 'app.default.svc.cluster.local',
      server: 'system resolver',
      addresses: ['10.244.1.11', '10.244.2.10', '10.244.3.12'],
    });
    assert.ok('error' in f.agent);
    // Static peer first, then DNS peers, never the pod itself.
    assert.deepEqual(log.probes, ['10.244.4.4:7470', '10.244.2.10:7470', '10.244.3.12:7470']);
    assert.deepEqual(f.peerProbes, [
      { ip: '10.244.4.4', error: null },
      { ip: '10.244.2.10', error: null },
      { ip: '10.244.3.12', error: 'ECONNREFUSED' },
    ]);
  });

  it('uses --interface, reads an existing device, and asks the agent instead of probing', async () => {
    // First matching responder wins, so this runner is built from scratch.
    const merged = new FakeRunner()
      .on('ip -j -d addr show dev vx0', { stdout: ADDR_VX0 })
      .on('ip -j -d addr show dev net1', { stdout: ADDR_ETH0 })
      .on('ip -V', { stdout: 'ip utility, iproute2-6.1.0, libbpf 1.1.0\n' });
    const { deps, log } = fakeDeps(merged, {
      fetchStatus: async () => await Promise.resolve(agentStatus()),
      files: { '/proc/sys/net/ipv4/conf/net1/rp_filter': '2\n' },
    });
    const f = await gatherFacts({ ...OPTS, interface: 'net1', podIp: '10.9.9.9', peers: ['10.244.2.10'] }, deps);
    assert.ok(!merged.commands().includes('ip -j -4 route show default'), 'no default-route lookup with --interface');
    assert.ok(merged.commands().includes('ip -j -d addr show dev net1'));
    assert.equal('from' in f.underlay && f.underlay.from, 'flag');
    assert.deepEqual(f.device, { name: 'vx0', exists: true, mtu: 1400, kind: 'vxlan', ipv4: [] });
    assert.deepEqual(f.rpFilter, { all: 1, default: 1, underlay: 2, device: 2 });
    assert.equal(f.ownIp, '10.9.9.9', 'KMCAST_POD_IP wins over the interface address');
    assert.equal(f.dns, null);
    assert.ok('status' in f.agent);
    assert.deepEqual(log.probes, [], 'no UDP probes when the agent answers');
    assert.deepEqual(log.resolved, []);
  });

  it('does not add MDB entries or delete anything when the test link cannot be created', async () => {
    const runner = standardRunner().on('ip link add', { code: 2, stderr: 'RTNETLINK answers: Operation not permitted\n' });
    const { deps } = fakeDeps(runner);
    const f = await gatherFacts(OPTS, deps);
    assert.deepEqual(f.vxlanProbe, { link: 'kmcdocabc123', ok: false, error: 'RTNETLINK answers: Operation not permitted' });
    assert.equal(f.mdbProbe, null);
    assert.ok(!runner.commands().some((c) => c.startsWith('bridge mdb add') || c.startsWith('ip link del')));
  });

  it('deletes the test link even when the MDB probe fails', async () => {
    const runner = standardRunner().on('bridge mdb add', { code: 2, stderr: 'Error: unknown option dst\n' });
    const { deps } = fakeDeps(runner);
    const f = await gatherFacts(OPTS, deps);
    assert.deepEqual(f.mdbProbe, { ok: false, error: 'Error: unknown option dst' });
    assert.ok(runner.commands().includes('ip link del dev kmcdocabc123'));
  });

  it('reports a missing default route as an underlay error', async () => {
    const r = new FakeRunner().on('ip -j -4 route show default', { stdout: '[]' });
    const { deps } = fakeDeps(r);
    const f = await gatherFacts(OPTS, deps);
    assert.deepEqual(f.underlay, { error: 'no IPv4 default route' });
    assert.equal(f.ownIp, null);
  });
});

/** Facts of a healthy pod: every check OK. */
function goodFacts(over: Partial<DoctorFacts> = {}): DoctorFacts {
  return {
    capEff: '00000000a80435fb',
    uid: 0,
    kernelRelease: '6.12.0-amd64',
    vxlanProbe: { link: 'kmcdocabc123', ok: true },
    mdbProbe: { ok: true },
    ipVersion: 'ip utility, iproute2-6.15.0, libbpf 1.1.2',
    mdbHelp: 'Usage: bridge mdb ... [ dst IPADDR ]',
    underlay: { name: 'eth0', exists: true, mtu: 1500, kind: 'veth', ipv4: ['10.244.1.11'], from: 'default-route' },
    device: { name: 'vx0', exists: true, mtu: 1450, kind: 'vxlan', ipv4: ['10.244.1.11'] },
    rpFilter: { all: 0, default: 1, underlay: 1, device: 2 },
    procSys: { writable: true, readOnlyMount: false },
    ownIp: '10.244.1.11',
    dns: { service: 'app.svc', server: 'system resolver', addresses: ['10.244.1.11', '10.244.2.10'] },
    agent: { url: 'u', error: 'ECONNREFUSED' },
    peerProbes: [{ ip: '10.244.2.10', error: null }],
    sockets: { sockets: [] },
    ...over,
  };
}

function byId(results: readonly CheckResult[], id: string): CheckResult {
  const r = results.find((x) => x.id === id);
  assert.ok(r, `check ${id} present in ${results.map((x) => x.id).join(',')}`);
  return r;
}

describe('evaluate', () => {
  it('an IPv6-only pod: the overlay MTU less 70, the DNS check counts AAAA records', () => {
    const results = evaluate(
      goodFacts({
        underlay: { name: 'eth0', exists: true, mtu: 1430, kind: 'veth', ipv4: [], from: 'default-route' },
        device: { name: 'vx0', exists: true, mtu: 1360, kind: 'vxlan', ipv4: [] },
        ownIp: 'fd00:10:244:1::11',
        dns: { service: 'app.svc', server: 'system resolver', addresses: ['fd00:10:244:1::11', 'fd00:10:244:2::11'] },
      }),
      OPTS,
    );
    assert.equal(byId(results, 'mtu').status, 'OK');
    assert.match(byId(results, 'mtu').detail, /eth0 mtu 1430 -> overlay mtu 1360 \(max UDP payload 1312\)/);
    assert.match(byId(results, 'dns').detail, /2 AAAA record\(s\) incl\. this pod fd00:10:244:1::11, 1 peer\(s\): fd00:10:244:2::11/);
  });

  it('passes a healthy pod (the agent check warns only because no agent answered)', () => {
    const results = evaluate(goodFacts(), OPTS);
    for (const r of results) {
      if (r.id === 'agent') assert.equal(r.status, 'WARN');
      else if (r.id === 'capture') assert.equal(r.status, 'SKIP', 'no agent status to read the capture path from');
      else assert.equal(r.status, 'OK', `${r.id}: ${r.detail}`);
    }
    assert.equal(doctorExitCode(results), 0);
    assert.match(byId(results, 'mtu').detail, /eth0 mtu 1500 -> overlay mtu 1450/);
    assert.match(byId(results, 'rp-filter-overlay').detail, /max\(all=0, vx0=2\) = 2 \(loose\)/);
    assert.match(byId(results, 'rp-filter-underlay').detail, /max\(all=0, eth0=1\) = 1 \(strict\)/);
    assert.match(byId(results, 'dns').detail, /2 A record\(s\) incl\. this pod 10\.244\.1\.11, 1 peer\(s\): 10\.244\.2\.10/);
  });

  it('fails without NET_ADMIN, with the securityContext fix', () => {
    const results = evaluate(goodFacts({ capEff: '00000000a80425fb', vxlanProbe: { link: 'kmcdocabc123', ok: false, error: 'RTNETLINK answers: Operation not permitted' }, mdbProbe: null }), OPTS);
    const cap = byId(results, 'net-admin');
    assert.equal(cap.status, 'FAIL');
    assert.match(cap.fix ?? '', /capabilities\.add: \["NET_ADMIN"\]/);
    assert.equal(byId(results, 'vxlan').status, 'FAIL');
    assert.match(byId(results, 'vxlan').fix ?? '', /NET_ADMIN/);
    // No test link: MDB judged from versions.
    assert.match(byId(results, 'mdb').detail, /not tried/);
    assert.equal(doctorExitCode(results), 1);
  });

  it('names the vxlan module when the kernel has no driver', () => {
    const r = byId(evaluate(goodFacts({ vxlanProbe: { link: 'kmcdoc1', ok: false, error: 'Error: Unknown device type.' }, mdbProbe: null }), OPTS), 'vxlan');
    assert.equal(r.status, 'FAIL');
    assert.match(r.fix ?? '', /modprobe vxlan/);
  });

  it('warns about flood fallback with iproute2 older than 6.3 or without dst', () => {
    for (const ipVersion of ['ip utility, iproute2-6.1.0, libbpf 1.1.0', 'ip utility, iproute2-ss200127']) {
      const r = byId(evaluate(goodFacts({ ipVersion }), OPTS), 'mdb');
      assert.equal(r.status, 'WARN', ipVersion);
      assert.match(r.detail, /falls back to flooding/);
      assert.match(r.fix ?? '', /iproute2 >= 6\.3/);
    }
    const noDst = byId(evaluate(goodFacts({ mdbHelp: 'Usage: bridge mdb { add | del } dev DEV port PORT grp GROUP' }), OPTS), 'mdb');
    assert.equal(noDst.status, 'WARN');
    const probeFailed = byId(evaluate(goodFacts({ mdbProbe: { ok: false, error: 'Error: invalid argument' } }), OPTS), 'mdb');
    assert.equal(probeFailed.status, 'WARN');
    assert.match(probeFailed.fix ?? '', /kernel >= 6\.3/);
    const oldKernel = byId(evaluate(goodFacts({ mdbProbe: null, kernelRelease: '5.15.0-91-generic' }), OPTS), 'mdb');
    assert.equal(oldKernel.status, 'WARN');
    assert.equal(byId(evaluate(goodFacts({ ipVersion: null }), OPTS), 'mdb').status, 'FAIL');
  });

  it('computes the overlay MTU and warns below 1280 or when the device is too big', () => {
    const low = byId(
      evaluate(goodFacts({ underlay: { name: 'eth0', exists: true, mtu: 1300, kind: null, ipv4: [], from: 'flag' }, device: { name: 'vx0', exists: false, mtu: null, kind: null, ipv4: [] } }), OPTS),
      'mtu',
    );
    assert.equal(low.status, 'WARN');
    assert.match(low.detail, /mtu 1300 -> overlay mtu 1250/);
    const big = byId(evaluate(goodFacts({ device: { name: 'vx0', exists: true, mtu: 1500, kind: 'vxlan', ipv4: [] } }), OPTS), 'mtu');
    assert.equal(big.status, 'WARN');
    assert.match(big.fix ?? '', /mtu 1450/);
    const missing = byId(evaluate(goodFacts({ underlay: { name: 'eth9', exists: false, mtu: null, kind: null, ipv4: [], from: 'flag' } }), OPTS), 'mtu');
    assert.equal(missing.status, 'FAIL');
    assert.match(missing.detail, /eth9 does not exist/);
    assert.equal(byId(evaluate(goodFacts({ underlay: { error: 'no IPv4 default route' } }), OPTS), 'mtu').status, 'FAIL');
  });

  it('fails strict rp_filter on an existing vx0 with pod-ip addressing, with the fix', () => {
    const results = evaluate(goodFacts({ rpFilter: { all: 1, default: 1, underlay: 0, device: 0 } }), OPTS);
    const r = byId(results, 'rp-filter-overlay');
    assert.equal(r.status, 'FAIL');
    assert.match(r.detail, /max\(all=1, vx0=0\) = 1 \(strict\)/);
    assert.match(r.detail, /route back via the underlay/);
    assert.match(r.fix ?? '', /rp_filter=2/);
    assert.doesNotMatch(r.fix ?? '', /--addressing|subnet/, 'subnet addressing is not implemented: no advice to use it');
  });

  it('accepts strict rp_filter when the agent runs subnet addressing', () => {
    const status = agentStatus({ addressing: 'subnet=100.64.0.0/16' });
    const r = byId(evaluate(goodFacts({ rpFilter: { all: 1, default: 1, underlay: 0, device: 0 }, agent: { url: 'u', status } }), OPTS), 'rp-filter-overlay');
    assert.equal(r.status, 'OK');
    assert.match(r.detail, /subnet=100\.64\.0\.0\/16/);
  });

  it('judges a vx0 to be created from conf/default and whether /proc/sys is writable', () => {
    const noDevice = { device: { name: 'vx0', exists: false, mtu: null, kind: null, ipv4: [] } } as const;
    const writable = evaluate(goodFacts({ ...noDevice, rpFilter: { all: 0, default: 1, underlay: 0, device: null } }), OPTS);
    const w = byId(writable, 'rp-filter-overlay');
    assert.equal(w.status, 'WARN');
    assert.match(w.detail, /max\(all=0, default=1\) = 1 \(strict\) for a new vx0/);
    assert.match(w.detail, /sets vx0 to 2/);
    assert.equal(byId(writable, 'proc-sys').status, 'OK');

    const ro = evaluate(goodFacts({ ...noDevice, rpFilter: { all: 1, default: 1, underlay: 0, device: null }, procSys: { writable: false, error: 'EROFS', readOnlyMount: true } }), OPTS);
    assert.match(byId(ro, 'rp-filter-overlay').detail, /cannot loosen it and exits 3/);
    assert.doesNotMatch(byId(ro, 'rp-filter-overlay').detail, /falls back/);
    const ps = byId(ro, 'proc-sys');
    assert.equal(ps.status, 'WARN');
    assert.match(ps.detail, /mounted read-only/);
    assert.equal(doctorExitCode(ro), 0, 'WARNs alone do not fail the run');

    const roLoose = byId(evaluate(goodFacts({ rpFilter: { all: 0, default: 0, underlay: 0, device: 0 }, procSys: { writable: false, error: 'EACCES', readOnlyMount: false } }), OPTS), 'proc-sys');
    assert.equal(roLoose.status, 'OK');
    assert.match(roLoose.detail, /EACCES/);
  });

  it('judges DNS answers: failure, nobody else, this pod missing', () => {
    const fail = byId(evaluate(goodFacts({ dns: { service: 'x.svc', server: '10.96.0.10', error: 'ENOTFOUND' } }), OPTS), 'dns');
    assert.equal(fail.status, 'FAIL');
    assert.match(fail.detail, /resolve x\.svc via 10\.96\.0\.10: ENOTFOUND/);
    assert.match(fail.fix ?? '', /headless/);
    const alone = byId(evaluate(goodFacts({ dns: { service: 'x', server: 's', addresses: ['10.244.1.11'] } }), OPTS), 'dns');
    assert.equal(alone.status, 'WARN');
    assert.match(alone.detail, /0 peer\(s\)/);
    const notMe = byId(evaluate(goodFacts({ dns: { service: 'x', server: 's', addresses: ['10.244.2.10'] } }), OPTS), 'dns');
    assert.equal(notMe.status, 'WARN');
    assert.match(notMe.fix ?? '', /publishNotReadyAddresses/);
    assert.equal(byId(evaluate(goodFacts({ dns: null }), OPTS), 'dns').status, 'SKIP');
  });

  it('judges UDP probes: refused fails, silence passes', () => {
    const results = evaluate(
      goodFacts({
        peerProbes: [
          { ip: '10.244.2.10', error: null },
          { ip: '10.244.3.12', error: 'ECONNREFUSED' },
          { ip: '10.244.4.4', error: 'EHOSTUNREACH' },
        ],
      }),
      OPTS,
    );
    assert.equal(byId(results, 'peer:10.244.2.10').status, 'OK');
    const refused = byId(results, 'peer:10.244.3.12');
    assert.equal(refused.status, 'FAIL');
    assert.match(refused.detail, /port unreachable/);
    assert.match(byId(results, 'peer:10.244.4.4').detail, /EHOSTUNREACH/);
    assert.equal(doctorExitCode(results), 1);
    assert.equal(byId(evaluate(goodFacts({ peerProbes: [] }), OPTS), 'peers').status, 'SKIP');
  });

  it("uses the agent's peer states when its /status answers", () => {
    const status = agentStatus({
      ready: false,
      peers: [
        { ip: '10.244.2.10', state: 'alive', lastSeen: '2026-01-01T00:00:00.000Z', groups: [], sources: ['dns'] },
        { ip: '10.244.3.12', state: 'expired', lastSeen: '2026-01-01T00:00:00.000Z', groups: [], sources: ['dns'] },
        { ip: '10.244.4.4', state: 'pending', lastSeen: null, groups: [], sources: ['static'] },
      ],
    });
    const results = evaluate(goodFacts({ agent: { url: 'u', status }, peerProbes: [] }), OPTS);
    assert.equal(byId(results, 'agent').status, 'WARN');
    assert.match(byId(results, 'agent').detail, /NOT ready, replication selective, 1\/3 peers alive/);
    assert.equal(byId(results, 'peer:10.244.2.10').status, 'OK');
    assert.equal(byId(results, 'peer:10.244.3.12').status, 'FAIL');
    assert.equal(byId(results, 'peer:10.244.4.4').status, 'WARN');
    assert.match(byId(results, 'peer:10.244.4.4').detail, /never heard/);
    const none = evaluate(goodFacts({ agent: { url: 'u', status: agentStatus() }, peerProbes: [] }), OPTS);
    assert.equal(byId(none, 'peers').status, 'WARN');
  });
});

describe('doctor helpers', () => {
  it('parses kernel versions; names date-stamped and unreadable iproute2 versions', () => {
    const mdb = (ipVersion: string): CheckResult => byId(evaluate(goodFacts({ ipVersion }), OPTS), 'mdb');
    assert.match(mdb('ip utility, iproute2-ss200127').detail, /date-stamped, older than 6\.3/);
    assert.match(mdb("ip: invalid option -- 'V'").detail, /unrecognised ip -V output/);
    assert.match(mdb('ip utility, iproute2-6.15.0, libbpf 1.1.2').detail, /iproute2 6\.15/);
    assert.deepEqual(parseKernelVersion('6.18.44-fc-v657'), [6, 18]);
    assert.deepEqual(parseKernelVersion('5.15.0-91-generic'), [5, 15]);
  });

  it('reads bit 12 of CapEff', () => {
    assert.equal(capEffOf('Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t00000000a80435fb\n'), '00000000a80435fb');
    assert.equal(hasCapability('0000000000001000', 12), true);
    assert.equal(hasCapability('000001ffffffefff', 12), false);
    assert.equal(hasCapability('00000000a80425fb', 12), false); // docker's default set
    assert.equal(hasCapability('00000000a80435fb', 12), true); // docker default + NET_ADMIN
  });

  it('takes the max of all and the device for rp_filter', () => {
    assert.equal(effectiveRpFilter(0, 2), 2);
    assert.equal(effectiveRpFilter(1, 0), 1);
    assert.equal(effectiveRpFilter(1, 2), 2);
  });

  it('finds a read-only /proc/sys in mountinfo', () => {
    assert.equal(procSysReadOnly(MOUNTINFO_RO), true);
    assert.equal(procSysReadOnly('22 1 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw'), false);
    assert.equal(procSysReadOnly('22 1 0:20 / /proc ro,nosuid - proc proc rw'), true);
    assert.equal(procSysReadOnly('25 1 0:22 / /sys ro,nosuid - sysfs sysfs ro'), false);
  });

  it('parses ip -j output', () => {
    assert.deepEqual(linkFactsOf(ADDR_ETH0, 'eth0'), { name: 'eth0', exists: true, mtu: 1450, kind: 'veth', ipv4: ['10.244.1.11'] });
    assert.equal(linkFactsOf('[]', 'x'), undefined);
    assert.equal(linkFactsOf('not json', 'x'), undefined);
    assert.equal(defaultRouteDevice('[{"dst":"default","gateway":"10.0.0.1","dev":"ens5"}]'), 'ens5');
    assert.equal(defaultRouteDevice('[]'), undefined);
  });

  it('lists expected peers: static and DNS, deduplicated, without this pod', () => {
    const dns = { service: 's', server: 'r', addresses: ['10.0.0.2', '10.0.0.1', '10.0.0.3'] };
    assert.deepEqual(expectedPeers(['10.0.0.3', '10.0.0.9'], dns, '10.0.0.1'), ['10.0.0.3', '10.0.0.9', '10.0.0.2']);
    assert.deepEqual(expectedPeers([], { service: 's', server: 'r', error: 'ENOTFOUND' }, null), []);
  });

  it('formats a report with fixes for WARN and FAIL only, and counts', () => {
    const text = formatDoctor([
      { id: 'a', title: 'first', status: 'OK', detail: 'fine', fix: 'unused' },
      { id: 'b', title: 'second', status: 'FAIL', detail: 'broken', fix: 'do this' },
      { id: 'c', title: 'third', status: 'SKIP', detail: 'n/a' },
    ]);
    assert.match(text, /^STATUS {2}CHECK {3}DETAIL$/m);
    assert.match(text, /^FAIL {4}second {2}broken$/m);
    assert.match(text, /fixes:\n {2}FAIL second: do this\n/);
    assert.doesNotMatch(text, /unused/);
    assert.match(text, /1 OK, 0 WARN, 1 FAIL, 1 SKIP/);
  });
});

describe('doctorOptions (CLI flags)', () => {
  const flags = { device: 'vx0', controlPort: '7470', url: 'http://127.0.0.1:9470' };
  it('falls back to the agent env vars', () => {
    const o = doctorOptions(flags, {
      KMCAST_SERVICE: 'app.svc',
      KMCAST_PEERS: '10.0.0.1, 10.0.0.2',
      KMCAST_POD_IP: '10.0.0.1',
      KMCAST_INTERFACE: 'eth0',
      KMCAST_DNS_SERVER: '10.96.0.10:53',
    });
    assert.equal(o.service, 'app.svc');
    assert.deepEqual(o.peers, ['10.0.0.1', '10.0.0.2']);
    assert.equal(o.podIp, '10.0.0.1');
    assert.equal(o.interface, 'eth0');
    assert.equal(o.dnsServer, '10.96.0.10:53');
    assert.equal(doctorOptions({ ...flags, service: 'flag.svc' }, { KMCAST_SERVICE: 'env.svc' }).service, 'flag.svc');
  });
  it('rejects bad peers, ports and DNS servers naming the flag', () => {
    assert.throws(
      () => doctorOptions({ ...flags, peers: '10.0.0.1,pod-b' }, {}),
      (e: unknown) => e instanceof ConfigError && /--peers: "pod-b"/.test(e.message),
    );
    assert.throws(() => doctorOptions({ ...flags, controlPort: '70000' }, {}), /--control-port 70000/);
    assert.throws(() => doctorOptions({ ...flags, dnsServer: 'dns.local' }, {}), /--dns-server dns\.local/);
  });
});
