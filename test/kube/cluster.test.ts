/**
 * The lab's Kubernetes cluster, as root (`npm run test:kube`; not part of `npm test`: the first
 * run builds Kubernetes from source). A 2-node lab (a calico-style node with ptp, a bridge-style
 * node with the bridge plugin) runs the control plane and a kubelet and kube-proxy per node; pods
 * of the locally built apps image must run on each node with addresses of their node's pod CIDR,
 * reach each other across nodes by TCP and through a Service, and multicast must not cross nodes:
 * the baseline kmcast fixes. `lab down`
 * must leave no process, mount, cgroup or directory behind.
 */
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { labDown, labHealth } from '../../src/lab/lab.js';
import { labStateDir } from '../../src/lab/plan.js';
import { KMCAST_MAIN, isAlive, waitFor } from '../../src/lab/process.js';
import { APPS_IMAGE, DATA_ROOT, nodeCgroupRoot, podRangeEnd, podRangeStart } from '../../src/lab/kube/plan.js';
import { POD_NETNS_DIR, cgroupMounts, cgroupPids, mountsUnder, parseNodesReady } from '../../src/lab/kube/cluster.js';
import { KMCAST_IMAGE } from '../../src/lab/kube/kmcast-image.js';
import { VERSION } from '../../src/version.js';
import { keepLab, needRoot, testLabId } from '../netns/harness.js';
import { kubeLabUp, kubeconfigOf, kubectlWith, nodeName, runner } from './harness.js';
import type { KubeLab } from './harness.js';

const id = testLabId('k');
let cluster: KubeLab | undefined;

const GROUP = '239.10.0.1';
const MCAST_PORT = 7001;
const UCAST_PORT = 7002;
const TCP_PORT = 7000;

// The pods' program: a TCP echo server, a socket bound to the group (only multicast to it
// arrives) and one for unicast, each datagram logged as "<kind> <source> <payload>".
const POD_PY = `
import os, socket, struct, sys, threading
def echo():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', ${TCP_PORT})); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(c.recv(1024)); c.close()
def recv(kind, sock):
    while True:
        data, src = sock.recvfrom(2048)
        os.write(1, ('%s %s %s\\n' % (kind, src[0], data.decode(errors='replace'))).encode())
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); m.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
m.bind(('${GROUP}', ${MCAST_PORT}))
m.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4s', socket.inet_aton('${GROUP}'), socket.inet_aton('0.0.0.0')))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', ${UCAST_PORT}))
threading.Thread(target=echo, daemon=True).start()
threading.Thread(target=recv, args=('ucast', u), daemon=True).start()
print('ready', flush=True)
recv('mcast', m)
`;

// Sends to a group (TTL 8: a router that forwarded multicast would pass it) or to a unicast address.
const SEND_PY = `
import socket, sys, time
dst, port, payload, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
for i in range(count):
    s.sendto(('%s-%d' % (payload, i)).encode(), (dst, port)); time.sleep(0.05)
`;

const TCP_PY = `
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); s.sendall(sys.argv[3].encode())
print(s.recv(1024).decode())
`;

function kubeconfig(): string {
  return kubeconfigOf(cluster);
}

async function kubectl(args: readonly string[], input?: string, timeoutMs = 30_000, config = kubeconfig()): Promise<string> {
  return await kubectlWith(config, args, input, timeoutMs);
}

function podManifest(name: string, node: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'kmc-test' } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'app', image: APPS_IMAGE, imagePullPolicy: 'Never', command: ['python3', '-u', '-c', POD_PY] }],
    },
  });
}

interface PodInfo {
  readonly name: string;
  readonly ip: string;
  readonly node: string;
}

async function podInfo(name: string): Promise<PodInfo> {
  const p = JSON.parse(await kubectl(['get', 'pod', name, '-o', 'json'])) as { status?: { podIP?: string }; spec?: { nodeName?: string } };
  return { name, ip: p.status?.podIP ?? '', node: p.spec?.nodeName ?? '' };
}

async function logs(pod: string): Promise<string[]> {
  return (await kubectl(['logs', pod])).split('\n').filter((l) => l !== '');
}

async function exec(pod: string, argv: readonly string[]): Promise<string> {
  return await kubectl(['exec', pod, '--', ...argv], undefined, 60_000);
}

async function send(from: string, dst: string, port: number, payload: string, count: number): Promise<void> {
  await exec(from, ['python3', '-c', SEND_PY, dst, String(port), payload, String(count)]);
}

/** The pid records of a lab (what lab up recorded for every process it started). */
function listPidRecordsSync(dir: string): Array<{ pid: number; netns: string; argv: string[] }> {
  const pids = join(dir, 'pids');
  return readdirSync(pids).map((f) => JSON.parse(readFileSync(join(pids, f), 'utf8')) as { pid: number; netns: string; argv: string[] });
}

function n(i: number): string {
  return nodeName(id, i);
}

before(async () => {
  cluster = await kubeLabUp(id, ['calico', 'bridge']);
});

after(async () => {
  if (process.getuid?.() !== 0 || keepLab()) return;
  await labDown(runner, { id });
});

test('lab up --kubernetes: every node registers Ready with its style label, CoreDNS runs', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfig();
  t.diagnostic(`cluster up in ${cluster!.upSeconds.toFixed(1)} s`);
  const nodes = parseNodesReady(await kubectl(['get', 'nodes', '-o', 'json']));
  assert.deepEqual(nodes.map((x) => [x.name, x.ready]).sort(), [
    [n(1), true],
    [n(2), true],
  ]);
  const labels = await kubectl(['get', 'nodes', '-o', `jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.kmcast\\.lab/style} {end}`]);
  assert.deepEqual(labels.trim().split(' ').sort(), [`${n(1)}=calico`, `${n(2)}=bridge`]);
  assert.match(await kubectl(['version', '-o', 'json']), /"gitVersion": "v1\.34\.\d+"/);
  assert.equal((await kubectl(['-n', 'kube-system', 'get', 'service', 'kube-dns', '-o', 'jsonpath={.spec.clusterIP}'])).trim(), '10.97.0.10');
  const health = await labHealth(cluster!.lab!, runner);
  assert.deepEqual([health.missingNamespaces, health.kubeDown], [[], []]);
  assert.match(await kubectl(['-n', 'kube-system', 'get', 'deployment', 'coredns', '-o', 'jsonpath={.status.availableReplicas}']), /^[1-9]/);
});

test('pods of the local apps image run on both nodes, reach each other by TCP and a Service, and multicast stays on its node', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfig();
  const pods: Array<[string, string]> = [
    ['a1', n(1)],
    ['b1', n(2)],
    ['b2', n(2)],
  ];
  // b1 only joins the Service below once the baseline (no endpoint) is proven.
  // Baseline: none of these pods exists yet.
  assert.equal((await kubectl(['get', 'pods', '-l', 'app=kmc-test', '-o', 'name'])).trim(), '');
  for (const [name, node] of pods) await kubectl(['apply', '-f', '-'], podManifest(name, node));
  await waitFor(
    'the test pods to be Ready and print "ready"',
    async () => {
      for (const [name] of pods) if (!(await logs(name)).includes('ready')) return false;
      return true;
    },
    180_000,
    { intervalMs: 1000, explain: async () => await kubectl(['get', 'pods', '-o', 'wide']).catch((e: unknown) => String(e)) },
  );
  const [a1, b1, b2] = await Promise.all(pods.map(([name]) => podInfo(name)));
  assert.ok(a1 && b1 && b2);
  // Each pod got its address from its node's CNI: host-local in the node's range.
  for (const [p, i] of [
    [a1, 1],
    [b1, 2],
    [b2, 2],
  ] as const) {
    assert.equal(p.node, n(i));
    const last = Number(p.ip.split('.')[3]);
    assert.ok(p.ip.startsWith(`10.244.${i}.`) && last >= Number(podRangeStart(i).split('.')[3]) && last <= Number(podRangeEnd(i).split('.')[3]), `${p.name} ip ${p.ip}`);
  }
  t.diagnostic(`pods: a1 ${a1.ip} on ${a1.node}, b1 ${b1.ip} and b2 ${b2.ip} on ${b1.node}`);

  // Unicast across nodes, both ways: the router routes the pod CIDRs.
  assert.equal((await exec(a1.name, ['python3', '-c', TCP_PY, b1.ip, String(TCP_PORT), 'hello-from-a1'])).trim(), 'hello-from-a1');
  assert.equal((await exec(b1.name, ['python3', '-c', TCP_PY, a1.ip, String(TCP_PORT), 'hello-from-b1'])).trim(), 'hello-from-b1');

  // A Service (kube-proxy, nftables mode) in front of b1, reached from the other node; and the
  // API server through the kubernetes Service.
  await kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kmc-echo' },
      spec: { selector: { 'kmc-echo': 'yes' }, ports: [{ port: 80, targetPort: TCP_PORT }] },
    }),
  );
  const clusterIp = (await kubectl(['get', 'service', 'kmc-echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  assert.match(clusterIp, /^10\.97\./);
  // Baseline: the Service has no endpoint yet, so nothing answers.
  assert.notEqual((await exec(a1.name, ['python3', '-c', TCP_PY, clusterIp, '80', 'via-service']).catch((e: unknown) => String(e))).trim(), 'via-service');
  await kubectl(['label', 'pod', b1.name, 'kmc-echo=yes']);
  await waitFor('the kmc-echo Service to answer from a1', async () => (await exec(a1.name, ['python3', '-c', TCP_PY, clusterIp, '80', 'via-service'])).trim() === 'via-service', 60_000, {
    intervalMs: 1000,
  });
  const api = await exec(a1.name, ['python3', '-c', "import socket; socket.create_connection(('10.97.0.1', 443), timeout=5); print('connected')"]);
  assert.equal(api.trim(), 'connected');

  // The cluster DNS (CoreDNS behind 10.97.0.10) answers Service names through the pods' search path;
  // a name that is no Service gets no address.
  const resolve = async (name: string): Promise<string> =>
    (await exec(a1.name, ['python3', '-c', 'import socket, sys\ntry: print(socket.gethostbyname(sys.argv[1]))\nexcept socket.gaierror as e: print("error", e.args[0])', name])).trim();
  assert.match(await resolve('kmc-nothing'), /^error /);
  assert.equal(await resolve('kmc-echo'), clusterIp);
  assert.equal(await resolve('kubernetes.default.svc.cluster.local'), '10.97.0.1');

  // Multicast baseline: on the bridge node, b2's datagrams to the group reach b1 (its socket is joined).
  await send(b2.name, GROUP, MCAST_PORT, 'same-node', 5);
  await waitFor("b1 to receive b2's multicast (same bridge)", async () => (await logs(b1.name)).some((l) => l === `mcast ${b2.ip} same-node-0` || l.startsWith(`mcast ${b2.ip} same-node-`)), 20_000, {
    intervalMs: 500,
    explain: async () => (await logs(b1.name)).join('\n'),
  });
  // Across nodes: a1's multicast, then a unicast fence on the same path. Once the fence has
  // arrived, a forwarded multicast datagram (sent earlier) would have too.
  await send(a1.name, GROUP, MCAST_PORT, 'cross-node', 5);
  await send(a1.name, b1.ip, UCAST_PORT, 'fence', 3);
  await waitFor('the unicast fence from a1 at b1', async () => (await logs(b1.name)).some((l) => l.startsWith(`ucast ${a1.ip} fence-`)), 20_000, {
    intervalMs: 500,
    explain: async () => (await logs(b1.name)).join('\n'),
  });
  const crossed = (await logs(b1.name)).filter((l) => l.startsWith(`mcast ${a1.ip} `));
  assert.deepEqual(crossed, [], 'multicast from another node must not arrive without kmcast');
});

test('the kmcast image runs with the Dockerfile entrypoint, has kmcast on PATH and carries iproute2 >= 6.3, nftables and setpriv', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfig();
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'kmc-image' },
    spec: {
      restartPolicy: 'Never',
      nodeSelector: { 'kubernetes.io/hostname': n(1) },
      containers: [
        { name: 'version', image: KMCAST_IMAGE, imagePullPolicy: 'Never', args: ['--version'] },
        { name: 'tools', image: KMCAST_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', 'ip -V; nft --version; setpriv --help | grep -c -- --pdeathsig'] },
        // What `kubectl exec ... -- kmcast status` runs (docs/operations.md).
        { name: 'path', image: KMCAST_IMAGE, imagePullPolicy: 'Never', command: ['kmcast', '--version'] },
        // The lab and the demo are not shipped in the image: a clear refusal, exit 2.
        { name: 'nolab', image: KMCAST_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', 'kmcast demo 2>&1; echo "exit=$?"; test ! -e /app/dist/src/lab && echo "no lab"'] },
      ],
    },
  };
  await kubectl(['apply', '-f', '-'], JSON.stringify(pod));
  let phase = '';
  await waitFor(
    'pod kmc-image to finish',
    async () => {
      phase = (await kubectl(['get', 'pod', 'kmc-image', '-o', 'jsonpath={.status.phase}'])).trim();
      return phase === 'Succeeded' || phase === 'Failed';
    },
    120_000,
    { intervalMs: 1000, explain: async () => `phase ${phase}\n${await kubectl(['describe', 'pod', 'kmc-image']).catch((e: unknown) => String(e))}` },
  );
  assert.equal(phase, 'Succeeded');
  assert.equal((await kubectl(['logs', 'kmc-image', '-c', 'version'])).trim(), VERSION);
  assert.equal((await kubectl(['logs', 'kmc-image', '-c', 'path'])).trim(), VERSION);
  const tools = await kubectl(['logs', 'kmc-image', '-c', 'tools']);
  const m = /iproute2-(\d+)\.(\d+)/.exec(tools);
  assert.ok(m && (Number(m[1]) > 6 || (Number(m[1]) === 6 && Number(m[2]) >= 3)), tools);
  assert.match(tools, /nftables v1\./);
  assert.match(tools, /\n1\n?$/);
  const nolab = await kubectl(['logs', 'kmc-image', '-c', 'nolab']);
  assert.match(nolab, /kmcast demo: not in this image/);
  assert.match(nolab, /exit=2\nno lab/);
});

test('lab status names a stopped component; lab down removes the cluster: processes, pod namespace pins, mounts, cgroups, data', async (t: TestContext) => {
  if (!needRoot(t)) return;
  kubeconfig();
  if (keepLab()) return t.skip('KMCAST_KEEP_LAB=1');
  const k = cluster?.lab?.kube;
  assert.ok(k);
  const cgroupDirs = cgroupMounts(readFileSync('/proc/self/mounts', 'utf8')).map((h) => join(h, nodeCgroupRoot(id, 1)));
  // Baseline: the cluster holds mounts, cgroups with processes and a data dir right now.
  assert.ok(mountsUnder(readFileSync('/proc/self/mountinfo', 'utf8'), [k.stateDir, k.dataDir]).length > 0);
  assert.ok(cgroupDirs.some((d) => existsSync(d)));
  assert.ok(existsSync(k.dataDir));
  // The pods' namespaces are pinned where a real node's containerd pins them (the node agent opens
  // them there); each node's veths name theirs.
  const pins = (await Promise.all([1, 2].map(async (i) => (await runner.run(['ip', '-n', n(i), 'netns', 'list-id'])).stdout.match(/cni-[0-9a-f-]{36}/g) ?? []))).flat();
  assert.ok(pins.length >= 3, `pod namespace pins: ${pins.join(' ')}`);
  for (const p of pins) assert.ok(existsSync(join(POD_NETNS_DIR, p)), p);
  // lab status sees a component that stopped (and only that one).
  const proxy = listPidRecordsSync(labStateDir(id)).find((r) => r.netns === n(2) && r.argv[0]?.endsWith('/kube-proxy'));
  assert.ok(proxy, 'a pid record for kube-proxy on node 2');
  process.kill(proxy.pid, 'SIGKILL');
  await waitFor('kube-proxy on node 2 to be gone', () => Promise.resolve(!isAlive(proxy.pid)), 10_000);
  assert.deepEqual((await labHealth(cluster!.lab!, runner)).kubeDown, [`kube-proxy on ${n(2)}`]);
  await labDown(runner, { id });
  assert.deepEqual(mountsUnder(readFileSync('/proc/self/mountinfo', 'utf8'), [k.stateDir, k.dataDir]), []);
  assert.deepEqual(
    cgroupDirs.filter((d) => existsSync(d)),
    [],
  );
  assert.equal(existsSync(k.dataDir), false);
  assert.equal(existsSync(k.stateDir), false);
  assert.deepEqual(
    pins.filter((p) => existsSync(join(POD_NETNS_DIR, p))),
    [],
    "the pods' namespace pins are removed",
  );
  assert.deepEqual(labProcesses(id), [], 'no process of the lab may survive lab down');
});

/** Processes whose command line names lab `labId` (its namespaces or its dirs). */
function labProcesses(labId: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cl = readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
        return cl.includes(`kmc${labId}-`) || cl.includes(`/${labId}/`) ? [`${p}: ${cl.slice(0, 120)}`] : [];
      } catch {
        return [];
      }
    });
}

test('lab down cleans up a killed lab up whose state and pid records are lost: containers, forwarder, mounts, cgroups', async (t: TestContext) => {
  if (!needRoot(t)) return;
  const id2 = testLabId('k');
  const child = spawn(process.execPath, [KMCAST_MAIN, 'lab', 'up', '--kubernetes', '--id', id2, '--nodes', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  try {
    await waitFor(`lab up --id ${id2} to report its node Ready`, () => Promise.resolve(stderr.includes('nodes Ready') || child.exitCode !== null ? true : undefined), 240_000, {
      intervalMs: 200,
      explain: () => stderr,
    });
    if (child.exitCode === null) child.kill('SIGKILL');
    assert.match(stderr, /1 nodes Ready/, stderr);
    const config = join(labStateDir(id2), 'kube', 'admin.kubeconfig');
    await kubectl(['apply', '-f', '-'], podManifest('c1', `kmc${id2}-n1`), 30_000, config);
    await kubectl(['wait', '--for=condition=Ready', 'pod/c1', '--timeout=120s'], undefined, 130_000, config);
    // Baseline: a container runs in the node's cgroup and the host forwarder runs; then the records go.
    const cgroupDirs = cgroupMounts(readFileSync('/proc/self/mounts', 'utf8')).map((h) => join(h, nodeCgroupRoot(id2, 1)));
    const containerPids = [...new Set(cgroupDirs.flatMap(cgroupPids))];
    assert.ok(containerPids.length > 0, 'a container runs under the node cgroup');
    assert.ok(
      labProcesses(id2).some((p) => p.includes('UNIX-CONNECT:')),
      'the host forwarder runs',
    );
    const pins = (await runner.run(['ip', '-n', `kmc${id2}-n1`, 'netns', 'list-id'])).stdout.match(/cni-[0-9a-f-]{36}/g) ?? [];
    assert.ok(pins.length >= 1 && pins.every((p) => existsSync(join(POD_NETNS_DIR, p))), `c1's namespace is pinned: ${pins.join(' ')}`);
    // What lab down could read is gone (the dir itself holds mounts: it cannot be removed).
    for (const f of ['state.json', 'pids']) await rm(join(labStateDir(id2), f), { recursive: true, force: true });
    await labDown(runner, { id: id2 });
    assert.deepEqual(containerPids.filter(isAlive), [], 'the containers are killed');
    assert.deepEqual(labProcesses(id2), [], 'no process of the lab survives');
    assert.deepEqual(mountsUnder(readFileSync('/proc/self/mountinfo', 'utf8'), [labStateDir(id2), join(DATA_ROOT, id2)]), []);
    assert.deepEqual(
      cgroupDirs.filter((d) => existsSync(d)),
      [],
    );
    assert.equal(existsSync(join(DATA_ROOT, id2)), false);
    assert.deepEqual(
      pins.filter((p) => existsSync(join(POD_NETNS_DIR, p))),
      [],
      "the pods' namespace pins are removed",
    );
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    if (!keepLab()) await labDown(runner, { id: id2 }).catch(() => undefined);
  }
});
