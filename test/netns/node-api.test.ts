/**
 * What the node agent exposes, and to whom, on a 2-node lab (bridge, calico):
 *
 * Domain A (VNI 100): n1p1 | n2p1     No domain: n1p2, n1p3 | n2p2, n2p3
 *
 * - without --key-file the agent refuses to start unless --insecure-no-key (exit 2 naming the flag);
 *   this lab's agents run with it, and /status and doctor say so;
 * - a pod reaches the pod API at its node's address (/v1/pods/<ip>, /healthz, /readyz) but not
 *   /status or /metrics, which the node's loopback (or --status-http) gets;
 * - 8 parallel request loops from one pod for unlisted IPs (a local pod of no domain, and IPs that
 *   are nobody's) cost the agent well under a ms of CPU per request: answered from a rate-limited
 *   view, not by several `ip` processes per request.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { UNPRIVILEGED } from '../../src/lab/node-apps.js';
import { agentsEvidence, cpuSeconds, findPython, KMCAST_MAIN, netnsFetch, netnsGet, runInNetns, startNodeAgent, waitFor } from '../../src/lab/process.js';
import type { NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab, LabNode, LabPod } from '../../src/lab/types.js';
import { NODE_HTTP_PORT, podStatusPath } from '../../src/node/api.js';
import type { PodProgramStatus } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = 'kmcast-peers.default.svc.cluster.local';
const STATUS_PORT = 9474;
/**
 * The most CPU the agent (its `ip` helpers included) may spend per request of the loops, ms: an
 * answer from the view costs node's HTTP handling (a fraction of a ms), a lookup several `ip`
 * processes (about 10 ms). The loops are closed: a faster agent gets more requests.
 */
const MAX_CPU_MS_PER_REQUEST = 2;
const LOOP_SECONDS = 5;

// argv: base-url seconds threads path... Each thread loops GETs over the paths (one connection
// per request, as kmcast wait does); prints {"status": count} as JSON.
const LOOPS_PY = `
import collections, http.client, json, sys, threading, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); secs = float(sys.argv[2]); n = int(sys.argv[3]); paths = sys.argv[4:]
counts = collections.Counter(); lock = threading.Lock()
def loop(i):
    end = time.time() + secs; k = i
    while time.time() < end:
        path = paths[k % len(paths)]; k += 1
        try:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=5); c.request('GET', path); r = c.getresponse(); r.read(); c.close(); key = str(r.status)
        except Exception as e:
            key = 'error:' + type(e).__name__
        with lock: counts[key] += 1
ts = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(counts))
`;

describe('node mode: what the agent serves to pods, and at what cost', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  const agents = new Map<number, NodeAgentHandle>();
  const evidence = (): Promise<string> => agentsEvidence(agents.values());
  const pod = (name: string): LabPod => lab.pods.find((p) => p.name === name)!;
  const node = (i: number): LabNode => lab.nodes[i - 1]!;

  before(async () => {
    lab = await labUp({ id: testLabId('na'), nodes: ['bridge', 'calico'], podsPerNode: 3, mtu: 1500, service: SERVICE }, { runner });
    await setServiceMembers(lab, [pod('n1p1').ip, pod('n2p1').ip]);
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL').catch(() => undefined)));
    if (lab && !keepLab()) await labDown(runner, { id: lab.spec.id });
  });

  /** GETs from a pod (unprivileged) to its node's address. */
  async function fromPod(p: LabPod, paths: readonly string[], port = NODE_HTTP_PORT): Promise<Array<{ status: number; body: string }>> {
    const urls = paths.map((path) => `http://${node(p.node).underlayIp}:${port}${path}`);
    return await netnsGet(p.netns, urls, { where: `pod ${p.name}`, as: UNPRIVILEGED, timeoutMs: 15_000 });
  }

  test('without --key-file the agent does not start unless --insecure-no-key says so', async (t) => {
    if (!needRoot(t)) return;
    const argv = [
      process.execPath,
      KMCAST_MAIN,
      'node',
      '--service',
      `${SERVICE}=100`,
      '--peers',
      lab.nodes.map((n) => n.underlayIp).join(','),
      '--dns-server',
      `${lab.dns.ip}:${lab.dns.port}`,
      '--http',
      'off',
    ];
    const r = await runInNetns(node(1).netns, argv, 8_000);
    assert.equal(r.code, 2, `a keyless agent must exit 2 at once, got ${String(r.code)} (null: still running when killed): ${r.stderr.slice(-600)}`);
    assert.match(r.stderr, /--key-file/);
    assert.match(r.stderr, /--insecure-no-key/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace for a user mistake');
  });

  test('agents started with --insecure-no-key program the members and say they are insecure', async (t) => {
    if (!needRoot(t)) return;
    for (const i of [1, 2]) agents.set(i, await startNodeAgent(lab, node(i), ['--service', `${SERVICE}=100`, '--heartbeat-interval', '500', '--resolve-interval', '1000']));
    await waitFor(
      'n1p1 and n2p1 programmed',
      async () => {
        for (const p of [pod('n1p1'), pod('n2p1')]) {
          const r = await netnsFetch(node(p.node).netns, podStatusPath(p.ip), NODE_HTTP_PORT);
          if (r.status !== 200 || !(JSON.parse(r.body) as PodProgramStatus).programmed) return false;
        }
        return true;
      },
      30_000,
      { intervalMs: 200, explain: evidence },
    );
    const st = JSON.parse((await netnsFetch(node(1).netns, '/status', NODE_HTTP_PORT)).body) as NodeStatus;
    assert.equal(st.authenticated, false);
    assert.equal(st.insecureNoKey, true);
    const doc = await runInNetns(node(1).netns, [process.execPath, KMCAST_MAIN, 'doctor', '--node', '--json'], 20_000);
    const key = (JSON.parse(doc.stdout) as { checks: Array<{ id: string; status: string; detail: string }> }).checks.find((c) => c.id === 'node-key');
    assert.equal(key?.status, 'WARN', `doctor --node: ${doc.stdout}`);
    assert.match(key.detail, /INSECURE/);
    const log = await readFile(agents.get(1)!.logFile, 'utf8');
    assert.match(log, /INSECURE: running without --key-file/, 'the agent log warns');
  });

  test('a pod gets the pod API at its node address, not /status or /metrics; the node loopback gets them', async (t) => {
    if (!needRoot(t)) return;
    const p = pod('n1p3');
    // Baseline: the pod reaches the agent, and what it needs is served.
    const [health, member] = await fromPod(p, ['/healthz', podStatusPath(pod('n1p1').ip)]);
    assert.equal(health!.status, 200, 'the pod reaches the agent at its node address');
    assert.equal(member!.status, 200);
    assert.equal((JSON.parse(member!.body) as PodProgramStatus).programmed, true);
    const [st, metrics] = await fromPod(p, ['/status', '/metrics']);
    assert.equal(st!.status, 403, `a pod must not read /status (names pods, veths, namespaces, groups, peers): ${st!.body.slice(0, 200)}`);
    assert.equal(metrics!.status, 403, `a pod must not read /metrics: ${metrics!.body.slice(0, 200)}`);
    assert.equal((await netnsFetch(node(1).netns, '/status', NODE_HTTP_PORT)).status, 200, 'the node itself reads /status');
    assert.equal((await netnsFetch(node(1).netns, '/metrics', NODE_HTTP_PORT)).status, 200, 'the node itself reads /metrics');
  });

  test('8 parallel request loops from a pod for unlisted IPs: answered, at a bounded CPU cost per request', async (t) => {
    if (!needRoot(t)) return;
    const p = pod('n1p3');
    const agent = agents.get(1)!;
    // An unlisted pod on this (bridge) node is known from the view once looked up.
    const known = await waitFor(
      'the agent answers n1p3 (no domain) as not_member behind its veth',
      async () => {
        const [r] = await fromPod(p, [podStatusPath(p.ip)]);
        if (r!.status !== 200) return undefined;
        const s = JSON.parse(r!.body) as PodProgramStatus;
        return s.reason === 'not_member' && s.hostVeth ? s : undefined;
      },
      10_000,
      { intervalMs: 200, explain: evidence },
    );
    assert.equal(known.programmed, false);
    const paths = [podStatusPath(p.ip), ...Array.from({ length: 40 }, (_, i) => podStatusPath(`10.250.${i}.${((i * 7) % 250) + 1}`))];
    const cpu0 = cpuSeconds(agent.child.pid);
    const t0 = Date.now();
    const r = await runInNetns(
      p.netns,
      [...UNPRIVILEGED, findPython(), '-c', LOOPS_PY, `http://${node(1).underlayIp}:${NODE_HTTP_PORT}`, String(LOOP_SECONDS), '8', ...paths],
      (LOOP_SECONDS + 20) * 1000,
    );
    const wall = (Date.now() - t0) / 1000;
    const cpu = cpuSeconds(agent.child.pid) - cpu0;
    assert.equal(r.code, 0, r.stderr);
    const counts = JSON.parse(r.stdout) as Record<string, number>;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const perRequestMs = (1000 * cpu) / Math.max(1, total);
    t.diagnostic(`8 loops, ${wall.toFixed(1)} s: ${JSON.stringify(counts)}; agent CPU ${cpu.toFixed(2)} s (${((100 * cpu) / wall).toFixed(0)}% of one CPU, ${perRequestMs.toFixed(2)} ms per request)`);
    assert.ok(total >= 8 * LOOP_SECONDS, `the loops must have asked: ${JSON.stringify(counts)}`);
    assert.ok((counts['200'] ?? 0) > 0 && (counts['404'] ?? 0) > 0, `the local unlisted pod answered 200, the others 404: ${JSON.stringify(counts)}`);
    assert.ok(
      perRequestMs <= MAX_CPU_MS_PER_REQUEST,
      `the agent spent ${cpu.toFixed(2)} CPU-s in ${wall.toFixed(1)} s on ${total} requests: ${perRequestMs.toFixed(2)} ms each, more than ${MAX_CPU_MS_PER_REQUEST}`,
    );
  });

  test('--status-http: /status and /metrics there, and no longer on --http, not even to the loopback', async (t) => {
    if (!needRoot(t)) return;
    await agents.get(2)!.stop();
    agents.set(2, await startNodeAgent(lab, node(2), ['--service', `${SERVICE}=100`, '--heartbeat-interval', '500', '--resolve-interval', '1000', '--status-http', `127.0.0.1:${STATUS_PORT}`]));
    await waitFor('node 2 ready again', async () => (await netnsFetch(node(2).netns, '/readyz', NODE_HTTP_PORT).catch(() => ({ status: 0 }))).status === 200, 20_000, {
      intervalMs: 200,
      explain: evidence,
    });
    const st = await netnsFetch(node(2).netns, '/status', STATUS_PORT);
    assert.equal(st.status, 200);
    assert.equal((JSON.parse(st.body) as NodeStatus).mode, 'node');
    assert.equal((await netnsFetch(node(2).netns, '/metrics', STATUS_PORT)).status, 200);
    assert.equal((await netnsFetch(node(2).netns, '/status', NODE_HTTP_PORT)).status, 403);
    assert.equal((await netnsFetch(node(2).netns, '/metrics', NODE_HTTP_PORT)).status, 403);
    const [member] = await fromPod(pod('n2p2'), [podStatusPath(pod('n2p1').ip)]);
    assert.equal(member!.status, 200, 'the pod API stays on --http');
  });
});
