/**
 * `kmcast probe` on a real L2 segment: three namespaces on one Linux bridge (built here with `ip`,
 * independent of the lab), probes run in each namespace as separate processes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ExecRunner } from '../../src/kernel/runner.js';
import type { ProbeReport } from '../../src/probe/report.js';
import { needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const id = testLabId('p');
const bridgeNs = `kmc${id}-br`;
const members = [1, 2, 3].map((i) => ({ ns: `kmc${id}-m${i}`, ip: `198.18.0.${i}`, link: `kmc${id}v${i}` }));
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
let ready = false;

async function teardown(): Promise<void> {
  for (const ns of [bridgeNs, ...members.map((m) => m.ns)]) await runner.run(['ip', 'netns', 'del', ns], { allowFail: true });
}

before(async () => {
  if (privilegedReason()) return;
  await teardown();
  await runner.run(['ip', 'netns', 'add', bridgeNs]);
  await runner.run(['ip', 'link', 'add', 'kmcbr', 'type', 'bridge'], { netns: bridgeNs });
  await runner.run(['ip', 'link', 'set', 'kmcbr', 'up'], { netns: bridgeNs });
  for (const m of members) {
    await runner.run(['ip', 'netns', 'add', m.ns]);
    await runner.run(['ip', 'link', 'add', 'eth0', 'netns', m.ns, 'type', 'veth', 'peer', 'name', m.link], { netns: bridgeNs });
    await runner.run(['ip', 'link', 'set', m.link, 'master', 'kmcbr', 'up'], { netns: bridgeNs });
    await runner.run(['ip', 'addr', 'add', `${m.ip}/24`, 'dev', 'eth0'], { netns: m.ns });
    await runner.run(['ip', 'link', 'set', 'eth0', 'up'], { netns: m.ns });
    await runner.run(['ip', 'link', 'set', 'lo', 'up'], { netns: m.ns });
  }
  // Member 1 relies on a multicast route; members 2 and 3 name the interface with --interface.
  await runner.run(['ip', 'route', 'add', '224.0.0.0/4', 'dev', 'eth0'], { netns: members[0]!.ns });
  ready = true;
});

after(teardown);

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function inNs(ns: string, argv: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function probe(memberIndex: number, args: readonly string[]): Promise<Run> {
  const m = members[memberIndex]!;
  const iface = memberIndex === 0 ? [] : ['--interface', m.ip];
  return inNs(m.ns, [process.execPath, MAIN, 'probe', '--json', '--id', `m${memberIndex + 1}`, ...iface, ...args]);
}

function parse(run: Run): ProbeReport {
  try {
    return JSON.parse(run.stdout) as ProbeReport;
  } catch {
    throw new Error(`probe output is not JSON (exit ${run.code}): ${run.stdout}\n${run.stderr}`);
  }
}

test('three members started apart each receive every datagram of the two others, once', async (t) => {
  if (!needRoot(t)) return;
  assert.ok(ready);
  const runs = members.map((_, i) => {
    const peers = members
      .filter((_, j) => j !== i)
      .map((m) => m.ip)
      .join(',');
    // Started 300 ms apart: the HELLO handshake must keep the late joiners from losing data.
    const args = ['--peers', peers, '--rate', '500', '--count', '1000', '--size', '200', '--max-loss', '0'];
    return new Promise<void>((r) => setTimeout(r, i * 300)).then(() => probe(i, args));
  });
  const results = await Promise.all(runs);
  results.forEach((run, i) => {
    const report = parse(run);
    assert.equal(run.code, 0, `member ${i + 1}: ${run.stdout}${run.stderr}`);
    assert.equal(report.send?.sent, 1000);
    assert.equal(report.senders.length, 2);
    const expectedSenders = members.filter((_, j) => j !== i).map((m) => m.ip);
    assert.deepEqual(
      report.senders.map((s) => s.address),
      expectedSenders,
    );
    for (const s of report.senders) {
      assert.equal(s.source, 'probe');
      assert.equal(s.received, 1000, `member ${i + 1} from ${s.address}`);
      assert.equal(s.expected, 1000);
      assert.equal(s.lost, 0);
      assert.equal(s.duplicates, 0);
      assert.ok(s.latencyMs !== null && s.latencyMs.p50 >= 0);
      assert.ok(s.joinLatencyMs !== null && s.joinLatencyMs >= 0);
    }
  });
});

test('an expected sender that never sends is reported as all lost and fails --max-loss 0', async (t) => {
  if (!needRoot(t)) return;
  const run = await probe(1, ['--receive-only', '--peers', '198.18.0.99', '--rate', '100', '--count', '20', '--wait', '0.3', '--max-loss', '0']);
  assert.equal(run.code, 1, run.stdout + run.stderr);
  const report = parse(run);
  assert.equal(report.ok, false);
  assert.deepEqual(
    report.senders.map((s) => [s.address, s.source, s.received, s.lost, s.lossPercent]),
    [['198.18.0.99', 'missing', 0, 20, 100]],
  );
  // Without --max-loss the same run reports the loss but exits 0.
  const lenient = await probe(1, ['--receive-only', '--peers', '198.18.0.99', '--rate', '100', '--count', '20', '--wait', '0.3']);
  assert.equal(lenient.code, 0);
  assert.equal(parse(lenient).worstLossPercent, 100);
});

test('directed broadcast: the other members count the datagrams too', async (t) => {
  if (!needRoot(t)) return;
  const group = ['--group', '198.18.0.255:4322'];
  const listen = [1, 2].map((i) => probe(i, [...group, '--receive-only', '--peers', members[0]!.ip, '--rate', '200', '--count', '200', '--wait', '1']));
  const send = probe(0, [...group, '--send-only', '--peers', '198.18.0.2,198.18.0.3', '--rate', '200', '--count', '200']);
  const [a, b, s] = await Promise.all([...listen, send]);
  assert.equal(s!.code, 0, s!.stderr);
  for (const r of [a!, b!]) {
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rep = parse(r);
    assert.equal(rep.senders.length, 1);
    assert.equal(rep.senders[0]!.received, 200);
    assert.equal(rep.senders[0]!.duplicates, 0);
  }
});

test('cross-check with iperf2: the probe counts exactly what an iperf2 client sent', async (t) => {
  if (!needRoot(t)) return;
  const which = await runner.run(['sh', '-c', 'command -v iperf'], { allowFail: true });
  if (which.code !== 0) {
    t.skip('iperf (iperf2) not installed');
    return;
  }
  const listen = probe(1, ['--receive-only', '--rate', '1', '--count', '1', '--wait', '4']);
  // iperf2 must not start before the receiver joined: wait for the membership to show up.
  for (let i = 0; i < 100; i++) {
    const maddr = await runner.run(['ip', 'maddr', 'show', 'dev', 'eth0'], { netns: members[1]!.ns });
    if (maddr.stdout.includes('239.255.71.1')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const iperf = await inNs(members[0]!.ns, ['iperf', '-u', '-c', '239.255.71.1', '-p', '4321', '-T', '1', '-b', '1000pps', '-l', '100', '-t', '1']);
  assert.equal(iperf.code, 0, iperf.stderr);
  const sent = Number(/Sent (\d+) datagrams/.exec(iperf.stdout)?.[1]);
  const rep = parse(await listen);
  const s = rep.senders.find((x) => x.source === 'iperf2');
  assert.ok(s, JSON.stringify(rep));
  assert.equal(s.address, members[0]!.ip);
  assert.equal(s.duplicates, 0);
  assert.equal(s.lost, 0);
  // iperf2's "Sent N" also counts its closing FIN datagram(s); the data datagrams are ids 1..N-2.
  assert.ok(s.received >= 900 && s.received <= sent, `received ${s.received}, iperf2 sent ${sent}`);
  assert.equal(s.expected, s.received);
});
