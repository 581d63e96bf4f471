import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { podStatusPath } from '../../../src/node/api.js';
import type { PodProgramStatus } from '../../../src/node/api.js';
import { describe, fetchPodStatus, interpretAnswer, parseDuration, waitConfig, waitUntilProgrammed } from '../../../src/node/wait.js';
import type { Observation, WaitTarget } from '../../../src/node/wait.js';

const POD = '10.244.1.7';
const MAIN = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A fake node agent on 127.0.0.1; `port` 0 picks one. Tracks sockets so close() is immediate. */
async function fakeAgent(handler: Handler, port = 0): Promise<{ server: Server; port: number; url: string; close: () => Promise<void> }> {
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const p = (server.address() as AddressInfo).port;
  return {
    server,
    port: p,
    url: `http://127.0.0.1:${p}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const json =
  (status: number, body: unknown): Handler =>
  (_req, res) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(text);
  };

const programmed: PodProgramStatus = { podIp: POD, programmed: true, domain: 'app-kmcast.ns.svc.cluster.local', hostVeth: 'cali12ab' };

test('interpretAnswer: programmed, each reason, 404, other statuses and malformed bodies', () => {
  assert.equal(interpretAnswer(POD, 200, JSON.stringify(programmed)).state, 'programmed');
  for (const reason of ['not_member', 'not_local', 'no_netns', 'pending'] as const) {
    assert.equal(interpretAnswer(POD, 200, JSON.stringify({ podIp: POD, programmed: false, reason })).state, reason);
  }
  // An unknown reason from a newer agent is still "not yet", not a failure.
  assert.equal(interpretAnswer(POD, 200, JSON.stringify({ podIp: POD, programmed: false, reason: 'newfangled' })).state, 'pending');
  assert.equal(interpretAnswer(POD, 404, 'not found').state, 'unknown_pod');
  assert.deepEqual(interpretAnswer(POD, 500, '{}'), { state: 'bad_answer', detail: 'HTTP 500' });
  assert.equal(interpretAnswer(POD, 200, '<html>').state, 'bad_answer');
  assert.equal(interpretAnswer(POD, 200, '[1]').state, 'bad_answer');
  assert.equal(interpretAnswer(POD, 200, '{"programmed":"yes"}').state, 'bad_answer');
  // Another pod's answer must never let this pod start.
  const other = interpretAnswer(POD, 200, JSON.stringify({ ...programmed, podIp: '10.244.1.8' }));
  assert.equal(other.state, 'bad_answer');
});

test('describe: each state says what the pod waits for and how to fix it', () => {
  const t: WaitTarget = { agent: 'http://10.0.0.5:9471', podIp: POD };
  const s = (o: Observation): string => describe(o, t);
  assert.match(s({ state: 'not_member', status: { podIp: POD, programmed: false } }), /selected by the domain's headless Service with publishNotReadyAddresses: true/);
  assert.match(s({ state: 'unreachable', detail: 'ECONNREFUSED' }), /is the kmcast-node DaemonSet running on this node.*TCP 9471/);
  assert.match(s({ state: 'no_netns', status: { podIp: POD, programmed: false } }), /\/var\/run\/netns \(mountPropagation: HostToContainer\)/);
  assert.match(s({ state: 'not_local', status: { podIp: POD, programmed: false, domain: 'd' } }), /status\.hostIP/);
  assert.match(s({ state: 'unknown_pod' }), /--service list/);
  assert.match(s({ state: 'programmed', status: programmed }), /programmed in domain app-kmcast.*cali12ab/);
});

test('peer nodes: the wait says whom it waits for, and why it stopped waiting', () => {
  const t: WaitTarget = { agent: 'http://10.0.0.5:9471', podIp: POD };
  const peers = { listed: 2, heard: 1, waitingFor: ['172.31.3.2'], degraded: false, boundMs: 5000, leftMs: 2500 };
  const waiting = interpretAnswer(POD, 200, JSON.stringify({ podIp: POD, programmed: false, reason: 'peers', hostVeth: 'kmcv1', peers }));
  assert.equal(waiting.state, 'peers', 'captured locally but a peer node unheard: keep waiting');
  assert.match(describe(waiting, t), /waits to hear the domain's other nodes \(172\.31\.3\.2\).*at most 2\.5 s more/);
  const all = interpretAnswer(POD, 200, JSON.stringify({ podIp: POD, programmed: true, domain: 'd', peers: { ...peers, heard: 2, waitingFor: [], leftMs: 0 } }));
  assert.match(describe(all, t), /programmed in domain d; all 2 other nodes heard; starting the app/);
  const degraded = interpretAnswer(POD, 200, JSON.stringify({ podIp: POD, programmed: true, domain: 'd', peers: { ...peers, degraded: true, leftMs: 0 } }));
  assert.match(describe(degraded, t), /DEGRADED: peer nodes 172\.31\.3\.2 not heard within 5\.0 s, starting without them/);
  const older = interpretAnswer(POD, 200, JSON.stringify({ podIp: POD, programmed: true, domain: 'd' }));
  assert.match(describe(older, t), /programmed in domain d; starting the app/, 'an agent without peer readiness still works');
});

test('parseDuration and waitConfig: defaults, units, and errors that name the flag', () => {
  assert.equal(parseDuration('300s'), 300_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('2'), 2000);
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('soon'), undefined);
  assert.equal(parseDuration('-1s'), undefined);

  const c = waitConfig({ nodeIp: '10.0.0.5', podIp: POD });
  assert.deepEqual(c, { agent: 'http://10.0.0.5:9471', podIp: POD, timeoutMs: 300_000, intervalMs: 1000, requestTimeoutMs: 2000 });
  assert.equal(waitConfig({ nodeIp: '10.0.0.5', port: '19471', podIp: POD, timeout: '0' }).timeoutMs, 0);
  assert.equal(waitConfig({ nodeIp: '10.0.0.5', port: '19471', podIp: POD }).agent, 'http://10.0.0.5:19471');
  assert.equal(waitConfig({ agent: 'http://127.0.0.1:1234/ignored', podIp: POD }).agent, 'http://127.0.0.1:1234');
  assert.equal(waitConfig({ nodeIp: '10.0.0.5', podIp: POD, interval: '200ms' }).requestTimeoutMs, 1200);
  // An IPv6-only cluster: the downward API's addresses are IPv6, the agent URL brackets the host.
  assert.deepEqual(
    [waitConfig({ nodeIp: 'fd00:172:31:1::2', podIp: 'fd00:10:244:1::11' }).agent, waitConfig({ nodeIp: 'fd00:172:31:1::2', podIp: 'fd00:10:244:1::11' }).podIp],
    ['http://[fd00:172:31:1::2]:9471', 'fd00:10:244:1::11'],
  );
  const bad: [Parameters<typeof waitConfig>[0], RegExp][] = [
    [{ nodeIp: '10.0.0.5' }, /^--pod-ip: missing; set KMCAST_POD_IP/],
    [{ nodeIp: '10.0.0.5', podIp: '10.244.1' }, /^--pod-ip: invalid value/],
    [{ podIp: POD }, /^--node-ip: missing; set KMCAST_NODE_IP from the downward API \(fieldPath: status.hostIP\)/],
    [{ nodeIp: 'node-1', podIp: POD }, /^--node-ip: invalid value/],
    [{ nodeIp: '10.0.0.5', port: '70000', podIp: POD }, /^--port: invalid value/],
    [{ agent: 'https://x:1', podIp: POD }, /^--agent: invalid URL/],
    [{ agent: 'http://127.0.0.1:1', nodeIp: '10.0.0.5', podIp: POD }, /^--agent: give --agent or --node-ip, not both/],
    [{ nodeIp: '10.0.0.5', podIp: POD, timeout: 'forever' }, /^--timeout: invalid value/],
    [{ nodeIp: '10.0.0.5', podIp: POD, interval: '10ms' }, /^--interval: invalid value/],
  ];
  for (const [flags, re] of bad) assert.throws(() => waitConfig(flags), { name: 'WaitFlagError', message: re });
});

/** A fake clock: sleep advances time; polls return the scripted observations, the last repeats. */
function scripted(script: Observation[]): { deps: Parameters<typeof waitUntilProgrammed>[2]; lines: string[]; polls: () => number } {
  let now = 1_000_000;
  let n = 0;
  const lines: string[] = [];
  return {
    deps: {
      poll: () => Promise.resolve(script[Math.min(n++, script.length - 1)]!),
      now: () => now,
      sleep: (ms) => {
        now += ms;
        return Promise.resolve();
      },
      say: (l) => lines.push(l),
    },
    lines,
    polls: () => n,
  };
}

const T: WaitTarget = { agent: 'http://10.0.0.5:9471', podIp: POD };
const unreachable: Observation = { state: 'unreachable', detail: 'ECONNREFUSED' };
const notMember: Observation = { state: 'not_member', status: { podIp: POD, programmed: false, reason: 'not_member' } };
const pending: Observation = { state: 'pending', status: { podIp: POD, programmed: false, reason: 'pending' } };
const done: Observation = { state: 'programmed', status: programmed };

test('waitUntilProgrammed: a line when the reason changes and every 10 s while it stays, then ok', async () => {
  // 25 polls unreachable (agent not started), 3 not_member, 2 pending, then programmed.
  const s = scripted([...Array<Observation>(25).fill(unreachable), notMember, notMember, notMember, pending, pending, done]);
  const r = await waitUntilProgrammed(T, { timeoutMs: 300_000, intervalMs: 1000 }, s.deps);
  assert.equal(r.ok, true);
  assert.equal(s.polls(), 31);
  const states = s.lines.map((l) => (/unreachable/.test(l) ? 'unreachable' : /no domain/.test(l) ? 'not_member' : /installing/.test(l) ? 'pending' : /programmed/.test(l) ? 'programmed' : l));
  // Unreachable at 0, 10 and 20 s (every 10 s), then one line per change.
  assert.deepEqual(states, ['unreachable', 'unreachable', 'unreachable', 'not_member', 'pending', 'programmed']);
  assert.match(s.lines[0]!, /^waiting \(0 s\): /);
  assert.match(s.lines[1]!, /^waiting \(10 s\): /);
  assert.match(s.lines.at(-1)!, /after 30\.0 s/);
});

test('waitUntilProgrammed: gives up at the timeout with the last reason; 0 waits past any timeout', async () => {
  const s = scripted([unreachable, notMember]);
  const r = await waitUntilProgrammed(T, { timeoutMs: 5000, intervalMs: 1000 }, s.deps);
  assert.equal(r.ok, false);
  assert.equal(r.last?.state, 'not_member');
  assert.ok(!r.ok && r.waitedMs === 5000, JSON.stringify(r));
  assert.equal(s.polls(), 6, 'polls at 0..5 s');

  // The sleep before the deadline is shortened so the last poll happens at the deadline.
  const short = scripted([notMember]);
  const r2 = await waitUntilProgrammed(T, { timeoutMs: 2500, intervalMs: 1000 }, short.deps);
  assert.ok(!r2.ok && r2.waitedMs === 2500);

  const forever = scripted([...Array<Observation>(4000).fill(unreachable), done]);
  const r3 = await waitUntilProgrammed(T, { timeoutMs: 0, intervalMs: 1000 }, forever.deps);
  assert.equal(r3.ok, true, 'no timeout: still waiting after more than an hour');
  assert.equal(forever.polls(), 4001);
  assert.equal(forever.lines.length, 401, 'one line per 10 s, plus the final one');
});

test('fetchPodStatus against a fake agent: programmed, a reason, 404, and the path it asks', async () => {
  const seen: string[] = [];
  let reply: Handler = json(200, programmed);
  const a = await fakeAgent((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    reply(req, res);
  });
  try {
    const t = { agent: a.url, podIp: POD };
    assert.equal((await fetchPodStatus(t)).state, 'programmed');
    reply = json(200, { podIp: POD, programmed: false, reason: 'no_netns' });
    assert.equal((await fetchPodStatus(t)).state, 'no_netns');
    reply = json(404, { error: 'unknown pod' });
    assert.equal((await fetchPodStatus(t)).state, 'unknown_pod');
    assert.deepEqual(seen, Array(3).fill(`GET ${podStatusPath(POD)}`));
  } finally {
    await a.close();
  }
});

test('fetchPodStatus: an endless body is cut at the cap, a silent agent at the deadline, a closed port is unreachable', async () => {
  let written = 0;
  const endless = await fakeAgent((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    const pump = (): void => {
      while (!res.destroyed) {
        written += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  const silent = await fakeAgent(() => {
    /* never answers */
  });
  const stall = await fakeAgent((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"podIp":"10.244.1.7",'); // headers and half a body, then nothing
  });
  try {
    let t0 = Date.now();
    const big = await fetchPodStatus({ agent: endless.url, podIp: POD }, 5000, 64 * 1024);
    assert.deepEqual(big, { state: 'bad_answer', detail: 'the answer is larger than 65536 bytes' });
    assert.ok(Date.now() - t0 < 4000, 'cut at the cap, not at the deadline');
    assert.ok(written >= 64 * 1024, `the server did send more than the cap (${written})`);

    t0 = Date.now();
    const quiet = await fetchPodStatus({ agent: silent.url, podIp: POD }, 300);
    assert.deepEqual(quiet, { state: 'unreachable', detail: 'no complete answer within 300 ms' });
    const took = Date.now() - t0;
    assert.ok(took >= 290 && took < 3000, `took ${took} ms`);

    const half = await fetchPodStatus({ agent: stall.url, podIp: POD }, 300);
    assert.equal(half.state, 'unreachable', 'a stalled body hits the same deadline');
  } finally {
    await Promise.all([endless.close(), silent.close(), stall.close()]);
  }
  const gone = await fakeAgent(json(200, programmed));
  const url = gone.url;
  await gone.close();
  assert.deepEqual(await fetchPodStatus({ agent: url, podIp: POD }), { state: 'unreachable', detail: 'ECONNREFUSED' });
});

test('a pod that starts before its agent, then sees the agent restart, waits through both and starts once programmed', async () => {
  // Reserve a port, then free it: the "agent" is not running when the wait begins.
  const probe = await fakeAgent(json(200, {}));
  const port = probe.port;
  await probe.close();
  const t = { agent: `http://127.0.0.1:${port}`, podIp: POD };
  const lines: string[] = [];
  let agent: Awaited<ReturnType<typeof fakeAgent>> | undefined;
  let phase = 0;
  const run = waitUntilProgrammed(
    t,
    { timeoutMs: 20_000, intervalMs: 100 },
    {
      poll: async () => {
        const o = await fetchPodStatus(t, 500);
        // Drive the scenario from what the wait sees: down -> up (pending) -> restart (down) -> up (programmed).
        if (phase === 0 && o.state === 'unreachable') {
          phase = 1;
          agent = await fakeAgent(json(200, { podIp: POD, programmed: false, reason: 'pending' }), port);
        } else if (phase === 1 && o.state === 'pending') {
          phase = 2;
          await agent!.close();
        } else if (phase === 2 && o.state === 'unreachable') {
          phase = 3;
          agent = await fakeAgent(json(200, programmed), port);
        }
        return o;
      },
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      say: (l) => lines.push(l),
    },
  );
  try {
    const r = await run;
    assert.equal(r.ok, true, lines.join('\n'));
    assert.equal(phase, 3);
    const kinds = lines.map((l) => (/unreachable \(ECONNREFUSED\)/.test(l) ? 'down' : /installing/.test(l) ? 'pending' : /is programmed/.test(l) ? 'programmed' : l));
    assert.deepEqual(kinds, ['down', 'pending', 'down', 'programmed']);
  } finally {
    await agent?.close();
  }
});

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN, 'wait', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('close', (code) => resolve({ code, stderr }));
  });
}

test('kmcast wait: exit 0 once programmed (env from the downward API), 1 at the timeout with the reason, 2 for bad flags', async () => {
  let polls = 0;
  const a = await fakeAgent((req, res) => {
    polls++;
    json(200, polls < 3 ? { podIp: POD, programmed: false, reason: 'not_member' } : programmed)(req, res);
  });
  const never = await fakeAgent(json(200, { podIp: POD, programmed: false, reason: 'not_member' }));
  try {
    const ok = await cli(['--interval', '100ms'], { KMCAST_NODE_IP: '127.0.0.1', KMCAST_PORT: String(a.port), KMCAST_POD_IP: POD });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /waiting \(0 s\): the node agent lists pod 10\.244\.1\.7 in no domain yet/);
    assert.match(ok.stderr, /pod 10\.244\.1\.7 is programmed in domain app-kmcast/);
    assert.ok(polls >= 3);

    // --agent beats the KMCAST_NODE_IP an injected container always has.
    const late = await cli(['--agent', never.url, '--timeout', '1s', '--interval', '200ms'], { KMCAST_NODE_IP: '10.9.9.9', KMCAST_POD_IP: POD });
    assert.equal(late.code, 1, late.stderr);
    assert.match(
      late.stderr,
      /gave up after 1 s; last: the node agent lists pod 10\.244\.1\.7 in no domain yet: is the pod selected by the domain's headless Service with publishNotReadyAddresses: true/,
    );

    const bad = await cli(['--node-ip', '127.0.0.1', '--pod-ip', POD, '--timeout', 'soon']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^kmcast: --timeout: invalid value "soon"/);
    const none = await cli([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--pod-ip: missing/);
  } finally {
    await Promise.all([a.close(), never.close()]);
  }
});
