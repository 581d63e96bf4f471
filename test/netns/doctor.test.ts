/**
 * `kmcast doctor` and `kmcast status --pod` for real, in a pair of namespaces this file creates:
 * A (where doctor runs) and B (a "peer" with one address listening on the control port and one
 * not), joined by a veth with MTU 1400. Nothing is created or sent in the root namespace.
 */
import { describe, it, before, after } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ExecRunner } from '../../src/kernel/runner.js';
import { parseIpVersion } from '../../src/kernel/parse.js';
import type { CheckResult } from '../../src/sidecar/doctor.js';
import { needRoot, privilegedReason, testLabId } from './harness.js';
import { agentStatusFixture } from '../support/agent-status.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const runner = new ExecRunner();
const id = testLabId('d');
const NS_A = `kmc${id}-a`;
const NS_B = `kmc${id}-b`;
const IP_A = '10.254.0.1';
const PEER_UP = '10.254.0.2'; // something listens on the control port here
const PEER_DOWN = '10.254.0.3'; // nothing listens: ICMP port unreachable
const children: ChildProcess[] = [];

async function sh(argv: readonly string[]): Promise<void> {
  await runner.run(argv);
}

async function sysctlA(key: string, value: number): Promise<void> {
  await sh(['ip', 'netns', 'exec', NS_A, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

/** Starts `node -e script` inside B and waits for it to print "ready". */
async function startInB(script: string): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', NS_B, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout?.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`helper in ${NS_B} exited with ${code}: ${err}`)));
  });
}

async function doctor(...args: string[]): Promise<{ code: number | null; checks: CheckResult[]; stderr: string }> {
  const r = await runner.run(['ip', 'netns', 'exec', NS_A, process.execPath, MAIN, 'doctor', '--json', ...args], {
    allowFail: true,
  });
  let checks: CheckResult[] = [];
  try {
    checks = (JSON.parse(r.stdout) as { checks: CheckResult[] }).checks;
  } catch {
    assert.fail(`doctor printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, checks, stderr: r.stderr };
}

function check(checks: readonly CheckResult[], cid: string): CheckResult {
  const c = checks.find((x) => x.id === cid);
  assert.ok(c, `check ${cid} in ${checks.map((x) => x.id).join(', ')}`);
  return c;
}

async function linksInA(): Promise<string[]> {
  const r = await runner.run(['ip', '-n', NS_A, '-j', 'link', 'show']);
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

describe('kmcast doctor in a namespace', () => {
  before(async () => {
    if (privilegedReason()) return;
    await sh(['ip', 'netns', 'add', NS_A]);
    await sh(['ip', 'netns', 'add', NS_B]);
    await sh(['ip', '-n', NS_A, 'link', 'add', 'kmca', 'mtu', '1400', 'type', 'veth', 'peer', 'name', 'kmcb', 'mtu', '1400', 'netns', NS_B]);
    await sh(['ip', '-n', NS_A, 'addr', 'add', `${IP_A}/24`, 'dev', 'kmca']);
    await sh(['ip', '-n', NS_B, 'addr', 'add', `${PEER_UP}/24`, 'dev', 'kmcb']);
    await sh(['ip', '-n', NS_B, 'addr', 'add', `${PEER_DOWN}/24`, 'dev', 'kmcb']);
    for (const [ns, dev] of [
      [NS_A, 'kmca'],
      [NS_B, 'kmcb'],
    ] as const) {
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
    // Known starting point, whatever the host's defaults leak into new namespaces.
    await sysctlA('net.ipv4.conf.all.rp_filter', 0);
    await sysctlA('net.ipv4.conf.default.rp_filter', 0);
    await sysctlA('net.ipv4.conf.kmca.rp_filter', 0);
    await startInB(`const s=require('node:dgram').createSocket('udp4');s.bind(7470,'${PEER_UP}',()=>console.log('ready'));`);
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const ns of [NS_A, NS_B]) await runner.run(['ip', 'netns', 'del', ns], { allowFail: true });
  });

  it('reports capability, vxlan, MDB, rp_filter, MTU and peers', async (t: TestContext) => {
    if (!needRoot(t)) return;
    const { code, checks } = await doctor('--interface', 'kmca', '--peers', `${PEER_UP},${PEER_DOWN}`);
    assert.equal(check(checks, 'net-admin').status, 'OK');
    assert.equal(check(checks, 'vxlan').status, 'OK', check(checks, 'vxlan').detail);
    assert.ok(!(await linksInA()).some((l) => l.startsWith('kmcdoc')), 'the test vxlan link is gone');

    const ipV = (await runner.run(['ip', '-V'])).stdout;
    const v = parseIpVersion(ipV);
    const mdb = check(checks, 'mdb');
    if (v !== undefined && (v[0] > 6 || (v[0] === 6 && v[1] >= 3))) assert.equal(mdb.status, 'OK', mdb.detail);
    else assert.equal(mdb.status, 'WARN', mdb.detail);

    const rpU = check(checks, 'rp-filter-underlay');
    assert.equal(rpU.status, 'OK');
    assert.match(rpU.detail, /kmca: max\(all=0, kmca=0\) = 0/);
    const rpO = check(checks, 'rp-filter-overlay');
    assert.equal(rpO.status, 'OK');
    assert.match(rpO.detail, /max\(all=0, default=0\) = 0 \(off\) for a new vx0/);

    const mtu = check(checks, 'mtu');
    assert.equal(mtu.status, 'OK');
    assert.match(mtu.detail, /underlay kmca mtu 1400 -> overlay mtu 1350/);
    assert.equal(check(checks, 'proc-sys').status, 'OK');
    assert.equal(check(checks, 'dns').status, 'SKIP');
    assert.equal(check(checks, 'agent').status, 'WARN');

    assert.equal(check(checks, `peer:${PEER_UP}`).status, 'OK');
    const down = check(checks, `peer:${PEER_DOWN}`);
    assert.equal(down.status, 'FAIL');
    assert.match(down.detail, /port unreachable/);
    assert.equal(code, 1, 'a FAIL makes the exit code 1');

    const healthy = await doctor('--interface', 'kmca', '--peers', PEER_UP);
    assert.equal(healthy.code, 0, JSON.stringify(healthy.checks.filter((c) => c.status === 'FAIL')));
  });

  it('reports strict rp_filter with the fix, for a new and for an existing device', async (t: TestContext) => {
    if (!needRoot(t)) return;
    await sysctlA('net.ipv4.conf.all.rp_filter', 1);
    try {
      const fresh = check((await doctor('--interface', 'kmca', '--device', 'kmcvx')).checks, 'rp-filter-overlay');
      assert.equal(fresh.status, 'WARN');
      assert.match(fresh.detail, /max\(all=1, default=0\) = 1 \(strict\)/);
      assert.match(fresh.detail, /sets kmcvx to 2/);
      assert.match(fresh.fix ?? '', /rp_filter=2/);

      // An existing overlay device left strict: every packet from a peer's pod IP is dropped.
      // Without `dev` the kernel does not clamp the MTU to the underlay's - 50: a too-large device.
      await sh(['ip', '-n', NS_A, 'link', 'add', 'kmcvx', 'mtu', '1400', 'type', 'vxlan', 'id', '4242', 'dstport', '7471', 'nolearning']);
      await sysctlA('net.ipv4.conf.kmcvx.rp_filter', 0);
      const { checks, code } = await doctor('--interface', 'kmca', '--device', 'kmcvx');
      const existing = check(checks, 'rp-filter-overlay');
      assert.equal(existing.status, 'FAIL');
      assert.match(existing.detail, /max\(all=1, kmcvx=0\) = 1 \(strict\)/);
      assert.match(existing.fix ?? '', /net\.ipv4\.conf\.all\.rp_filter=2/);
      assert.doesNotMatch(existing.fix ?? '', /--addressing/);
      const mtu = check(checks, 'mtu');
      assert.equal(mtu.status, 'WARN', 'kmcvx at 1400 is larger than 1400 - 50');
      assert.match(mtu.fix ?? '', /mtu 1350/);
      assert.equal(code, 1);
    } finally {
      await sysctlA('net.ipv4.conf.all.rp_filter', 0);
      await runner.run(['ip', '-n', NS_A, 'link', 'del', 'kmcvx'], { allowFail: true });
    }
  });

  it("uses the agent's /status, and kmcast status --pod reads it inside the namespace", async (t: TestContext) => {
    if (!needRoot(t)) return;
    const status = agentStatusFixture({
      version: 'test',
      podIp: PEER_UP,
      underlay: 'kmcb',
      peers: [{ ip: IP_A, state: 'expired', lastSeen: new Date(Date.now() - 65_000).toISOString(), groups: ['239.1.1.1'], sources: ['dns'] }],
      localGroups: ['239.1.1.1'],
      entries: { fdb: 1, mdb: 1, routes: 2 },
      allowList: { installed: true, peers: 1 },
      drops: { unregistered: 3, control: { bad_mac: 4 } },
    });
    // A stand-in agent HTTP server on B's loopback (the real agent is tested elsewhere).
    await startInB(
      `require('node:http').createServer((q,r)=>{r.setHeader('content-type','application/json');` +
        `r.end(q.url==='/status'?${JSON.stringify(JSON.stringify(status))}:'{}')}).listen(9470,'127.0.0.1',()=>console.log('ready'));`,
    );

    const json = await runner.run([process.execPath, MAIN, 'status', '--pod', NS_B, '--json'], { allowFail: true });
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), status);

    const table = await runner.run([process.execPath, MAIN, 'status', '--pod', NS_B], { allowFail: true });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`${IP_A.replace(/\./g, '\\.')}\\s+expired\\s+1m\\d\\ds ago\\s+dns\\s+239\\.1\\.1\\.1`));
    assert.match(table.stdout, /drops: unregistered groups 3 {2}control: bad_mac 4/);

    const none = await runner.run([process.execPath, MAIN, 'status', '--pod', NS_A], { allowFail: true });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /127\.0\.0\.1:9470\/status: ECONNREFUSED; is the agent running\? its --http address\?/);

    // Doctor run in B itself picks up that server and reports the peer as the agent sees it.
    const r = await runner.run(['ip', 'netns', 'exec', NS_B, process.execPath, MAIN, 'doctor', '--json', '--interface', 'kmcb'], {
      allowFail: true,
    });
    const checks = (JSON.parse(r.stdout) as { checks: CheckResult[] }).checks;
    assert.equal(check(checks, 'agent').status, 'OK');
    const peer = check(checks, `peer:${IP_A}`);
    assert.equal(peer.status, 'FAIL');
    assert.match(peer.detail, /expired/);
    assert.equal(r.code, 1);
  });
});
