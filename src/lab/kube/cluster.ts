/**
 * Brings up and tears down the Kubernetes cluster of a lab (plan.ts says what and why): builds or
 * finds the binaries and images, issues the certificates, starts the control plane in kmc<id>-cp
 * and a containerd and a kubelet per lab node, and waits until every node is Ready.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { KmcastError, errorMessage } from '../../errors.js';
import { IpClient } from '../../kernel/ip.js';
import type { Runner } from '../../kernel/runner.js';
import type { LabCommand } from '../plan.js';
import { cmdline, isAlive, killPids, netnsFetch, spawnInNetns, spawned, waitFor } from '../process.js';
import { recordLabPid } from '../state.js';
import type { Lab, LabKube } from '../types.js';
import { ensureKubeBinaries } from './build.js';
import type { KubeBinaries } from './build.js';
import { ensureImages } from './images.js';
import { ensureKmcastImage } from './kmcast-image.js';
import { COREDNS_VERSION } from './versions.js';
import {
  APISERVER_PORT,
  CLUSTER_DNS_IP,
  DATA_ROOT,
  NODE_STYLE_LABEL,
  apiserverArgv,
  apiserverSocket,
  apiserverUrl,
  caCommands,
  certCommands,
  certExtensions,
  certSpecs,
  cniConfig,
  containerdArgv,
  containerdConfig,
  controlPlaneCommands,
  controllerManagerArgv,
  corednsManifest,
  cpNetns,
  ctrArgv,
  etcdArgv,
  kubeDirs,
  kubeNodeName,
  kubeconfig,
  kubeProxyArgv,
  kubeProxyConfig,
  kubeletArgv,
  kubeletConfig,
  nodeCgroupRoot,
  nodeDirs,
  nodeResolvConf,
  schedulerArgv,
} from './plan.js';

export interface KubeUpOptions {
  readonly runner: Runner;
  readonly onProgress?: (msg: string) => void;
}

async function runAll(runner: Runner, cmds: readonly LabCommand[]): Promise<void> {
  for (const c of cmds) await runner.run(c.argv, { netns: c.netns });
}

/** A free TCP port on 127.0.0.1 of the host (the forwarder binds it right after). */
async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(no log: ${errorMessage(err)})`;
  }
}

/** The cgroup hierarchies mounted on this machine (v1 controllers and the v2 tree), from /proc/self/mounts. */
export function cgroupMounts(mounts: string): string[] {
  return mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2')
    .map((f) => f[1] ?? '')
    .filter((p) => p !== '');
}

/** kubectl with the given kubeconfig, in `netns` (undefined: the host). */
async function kubectl(runner: Runner, kubeconfigPath: string, args: readonly string[], netns?: string): Promise<string> {
  const r = await runner.run(['kubectl', `--kubeconfig=${kubeconfigPath}`, '--request-timeout=10s', ...args], { netns, timeoutMs: 20_000, allowFail: true });
  if (r.code !== 0) throw new KmcastError(`kubectl ${args.join(' ')}: ${r.stderr.trim() || `exit code ${String(r.code)}`}`);
  return r.stdout;
}

interface NodeReady {
  readonly name: string;
  readonly ready: boolean;
  readonly reason: string;
}

/** Each node's Ready condition from `kubectl get nodes -o json`. Pure; exported for tests. */
export function parseNodesReady(json: string): NodeReady[] {
  const list = JSON.parse(json) as { items?: Array<{ metadata?: { name?: string }; status?: { conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }> } }> };
  return (list.items ?? []).map((n) => {
    const c = n.status?.conditions?.find((x) => x.type === 'Ready');
    return { name: n.metadata?.name ?? '?', ready: c?.status === 'True', reason: c ? `${c.reason ?? ''}: ${c.message ?? ''}` : 'no Ready condition yet' };
  });
}

/** Starts the cluster on a built lab; on failure the caller removes the lab (labDown also removes this). */
export async function kubeUp(lab: Lab, opts: KubeUpOptions): Promise<LabKube> {
  const { runner } = opts;
  const progress = opts.onProgress ?? (() => undefined);
  const { spec } = lab;
  const dirs = kubeDirs(lab.stateDir, spec.id);
  const cp = cpNetns(spec.id);
  const bins: KubeBinaries = await ensureKubeBinaries({ onProgress: (m) => progress(`build: ${m}`) });
  const images = await ensureImages(runner, bins.cache, bins.paths, (m) => progress(`build: ${m}`));
  const kmcastImage = await ensureKmcastImage(runner, bins.cache, (m) => progress(`build: ${m}`));

  await mkdir(dirs.pki, { recursive: true, mode: 0o700 });
  await mkdir(dirs.data, { recursive: true });
  await runAll(runner, controlPlaneCommands(spec));
  progress(`control plane ${cp}: ${apiserverUrl()}`);

  // Certificates.
  let t = Date.now();
  await runAll(runner, caCommands(dirs.pki));
  for (const c of certSpecs(spec, lab.nodes)) {
    await writeFile(join(dirs.pki, `${c.name}.ext`), certExtensions(c));
    await runAll(runner, certCommands(dirs.pki, c));
  }
  progress(`certificates: CA and ${certSpecs(spec, lab.nodes).length} certificates in ${((Date.now() - t) / 1000).toFixed(1)} s`);

  const hostPort = await freePort();
  const adminHost = join(dirs.state, 'admin.kubeconfig');
  const adminLab = join(dirs.state, 'admin-lab.kubeconfig');
  const cmConf = join(dirs.state, 'controller-manager.kubeconfig');
  const schedConf = join(dirs.state, 'scheduler.kubeconfig');
  await writeFile(adminHost, kubeconfig(`https://127.0.0.1:${hostPort}`, dirs.pki, 'admin', 'admin'), { mode: 0o600 });
  await writeFile(adminLab, kubeconfig(apiserverUrl(), dirs.pki, 'admin', 'admin'), { mode: 0o600 });
  await writeFile(cmConf, kubeconfig(apiserverUrl(), dirs.pki, 'system:kube-controller-manager', 'controller-manager'), { mode: 0o600 });
  await writeFile(schedConf, kubeconfig(apiserverUrl(), dirs.pki, 'system:kube-scheduler', 'scheduler'), { mode: 0o600 });

  // etcd, then the API server.
  const log = (name: string): string => join(dirs.state, `${name}.log`);
  t = Date.now();
  await spawned(spawnInNetns(cp, etcdArgv(bins.paths.etcd, dirs.etcd), { logFile: log('etcd'), detached: true }), 'etcd');
  await waitFor('etcd /health', async () => (await netnsFetch(cp, '/health', 2379)).status === 200, 30_000, {
    intervalMs: 200,
    explain: () => tail(log('etcd')),
  });
  await spawned(spawnInNetns(cp, apiserverArgv(bins.paths['kube-apiserver'], dirs.pki), { logFile: log('kube-apiserver'), detached: true }), 'kube-apiserver');
  await waitFor('kube-apiserver /readyz', async () => (await kubectl(runner, adminLab, ['get', '--raw', '/readyz'], cp)).trim() === 'ok', 120_000, {
    intervalMs: 500,
    explain: () => tail(log('kube-apiserver')),
  });
  progress(`etcd and kube-apiserver ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);

  // The host's way in: 127.0.0.1:<port> -> unix socket -> 127.0.0.1:6443 in the control plane.
  const sock = apiserverSocket(dirs);
  await spawned(spawnInNetns(cp, ['socat', `UNIX-LISTEN:${sock},fork,unlink-early,mode=600`, `TCP:127.0.0.1:${APISERVER_PORT}`], { logFile: log('forward-cp'), detached: true }), 'apiserver forwarder');
  await waitFor(`socket ${sock}`, () => Promise.resolve(existsSync(sock)), 10_000);
  const fwdArgv = ['socat', `TCP-LISTEN:${hostPort},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${sock}`];
  const fwd = spawn(fwdArgv[0] ?? 'socat', fwdArgv.slice(1), { stdio: 'ignore', detached: true });
  if (fwd.pid !== undefined) recordLabPid(spec.id, 'host', fwd.pid, fwdArgv);
  fwd.unref();
  await spawned(fwd, 'host apiserver forwarder');

  await spawned(spawnInNetns(cp, controllerManagerArgv(bins.paths['kube-controller-manager'], dirs.pki, cmConf), { logFile: log('kube-controller-manager'), detached: true }), 'kube-controller-manager');
  await spawned(spawnInNetns(cp, schedulerArgv(bins.paths['kube-scheduler'], schedConf), { logFile: log('kube-scheduler'), detached: true }), 'kube-scheduler');
  await waitFor('kubectl from the host', async () => (await kubectl(runner, adminHost, ['get', '--raw', '/readyz'])).trim() === 'ok', 30_000, { intervalMs: 300 });
  progress(`KUBECONFIG=${adminHost} (127.0.0.1:${hostPort} forwards to ${apiserverUrl()})`);

  // Worker nodes: cgroups, configs, containerd, images, kubelet.
  const cgroups = cgroupMounts(readFileSync('/proc/self/mounts', 'utf8'));
  await Promise.all(
    lab.nodes.map(async (node) => {
      const d = nodeDirs(dirs, node.index);
      for (const p of [d.state, d.containerdRoot, d.cniConf, d.kubeletRoot, d.podLogs, d.cniIpam]) await mkdir(p, { recursive: true });
      for (const h of cgroups) {
        const cg = join(h, nodeCgroupRoot(spec.id, node.index));
        await mkdir(cg, { recursive: true });
        // A new v1 cpuset starts with no CPUs and no memory nodes: nothing could join it.
        for (const f of ['cpuset.cpus', 'cpuset.mems']) {
          if (existsSync(join(h, f)) && readFileSync(join(cg, f), 'utf8').trim() === '') await writeFile(join(cg, f), readFileSync(join(h, f), 'utf8'));
        }
      }
      await writeFile(d.containerdConfig, containerdConfig(d));
      await writeFile(join(d.cniConf, '10-kmc-lab.conflist'), cniConfig(spec, node, d));
      await writeFile(d.kubeletConfig, kubeletConfig(spec, node, d, dirs.pki));
      await writeFile(d.resolvConf, nodeResolvConf(lab.dns.ip));
      await writeFile(d.kubeconfig, kubeconfig(apiserverUrl(), dirs.pki, `system:node:${kubeNodeName(spec.id, node.index)}`, `kubelet-n${node.index}`), { mode: 0o600 });
      await writeFile(d.proxyKubeconfig, kubeconfig(apiserverUrl(), dirs.pki, 'system:kube-proxy', 'kube-proxy'), { mode: 0o600 });
      await writeFile(d.proxyConfig, kubeProxyConfig(spec, node, d));
      const cdLog = join(d.state, 'containerd.log');
      await spawned(spawnInNetns(node.netns, containerdArgv(d), { logFile: cdLog, detached: true, mounts: 'host' }), `containerd on ${node.netns}`);
      await waitFor(`containerd on ${node.netns}`, async () => (await runner.run(ctrArgv(d, ['version']), { allowFail: true, timeoutMs: 10_000 })).code === 0, 30_000, {
        intervalMs: 200,
        explain: () => tail(cdLog),
      });
    }),
  );
  // One import at a time: they are I/O-bound and the machine is shared.
  t = Date.now();
  for (const node of lab.nodes) {
    const d = nodeDirs(dirs, node.index);
    for (const img of [images.pause, images.coredns, images.apps, kmcastImage]) await runner.run(ctrArgv(d, ['images', 'import', '--no-unpack', img]), { timeoutMs: 300_000 });
  }
  progress(`images imported into ${lab.nodes.length} containerds in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  for (const node of lab.nodes) {
    const d = nodeDirs(dirs, node.index);
    await spawned(
      spawnInNetns(node.netns, kubeletArgv(bins.paths.kubelet, spec, node, d), { logFile: join(d.state, 'kubelet.log'), detached: true, mounts: 'host' }),
      `kubelet on ${node.netns}`,
    );
    await spawned(spawnInNetns(node.netns, kubeProxyArgv(bins.paths['kube-proxy'], d), { logFile: join(d.state, 'kube-proxy.log'), detached: true }), `kube-proxy on ${node.netns}`);
  }
  t = Date.now();
  const names = lab.nodes.map((n) => kubeNodeName(spec.id, n.index));
  // kube-proxy answers /healthz 200 once it has programmed the Services.
  await Promise.all(
    lab.nodes.map(async (node) => {
      const logFile = join(nodeDirs(dirs, node.index).state, 'kube-proxy.log');
      await waitFor(`kube-proxy on ${node.netns} healthy`, async () => (await netnsFetch(node.netns, '/healthz', 10256)).status === 200, 120_000, {
        intervalMs: 500,
        explain: () => tail(logFile),
      });
    }),
  );
  let seen: NodeReady[] = [];
  await waitFor(
    `nodes ${names.join(', ')} Ready`,
    async () => {
      seen = parseNodesReady(await kubectl(runner, adminHost, ['get', 'nodes', '-o', 'json']));
      return names.every((n) => seen.some((s) => s.name === n && s.ready));
    },
    180_000,
    {
      intervalMs: 1000,
      explain: () =>
        `${seen.map((s) => `${s.name}: ${s.ready ? 'Ready' : `not ready (${s.reason})`}`).join('\n') || '(no nodes registered)'}\n` +
        lab.nodes.map((n) => `--- kubelet on ${n.netns}:\n${tail(join(nodeDirs(dirs, n.index).state, 'kubelet.log'), 8)}`).join('\n'),
    },
  );
  progress(`${names.length} nodes Ready and kube-proxy synced in ${((Date.now() - t) / 1000).toFixed(1)} s: ${lab.nodes.map((n) => `${kubeNodeName(spec.id, n.index)} (${NODE_STYLE_LABEL}=${n.style})`).join(', ')}`);
  // The cluster DNS, as a Deployment: the scheduler, a Service and kube-proxy all take part.
  t = Date.now();
  await runner.run(['kubectl', `--kubeconfig=${adminHost}`, 'apply', '-f', '-'], { input: corednsManifest(COREDNS_VERSION), timeoutMs: 60_000 });
  await waitFor(
    'CoreDNS available',
    async () => {
      const d = JSON.parse(await kubectl(runner, adminHost, ['-n', 'kube-system', 'get', 'deployment', 'coredns', '-o', 'json'])) as { status?: { availableReplicas?: number } };
      return (d.status?.availableReplicas ?? 0) >= 1;
    },
    180_000,
    { intervalMs: 1000, explain: async () => await kubectl(runner, adminHost, ['-n', 'kube-system', 'get', 'pods', '-o', 'wide']).catch((e: unknown) => errorMessage(e)) },
  );
  progress(`CoreDNS ${COREDNS_VERSION} available at ${CLUSTER_DNS_IP} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return { controlPlane: cp, apiserver: apiserverUrl(), kubeconfig: adminHost, hostPort, nodes: names, stateDir: dirs.state, dataDir: dirs.data };
}

/** Mount points under any of `prefixes`, deepest first, from /proc/self/mountinfo. Pure; exported for tests. */
export function mountsUnder(mountinfo: string, prefixes: readonly string[]): string[] {
  const points = mountinfo
    .split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((p) => p !== '' && prefixes.some((pre) => p === pre || p.startsWith(`${pre}/`)));
  return [...new Set(points)].sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

/** Every pid in a cgroup directory tree (cgroup.procs of each level); [] when there is none. */
export function cgroupPids(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string): void => {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (/^\d+$/.test(l)) out.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // vanished while walking
    }
  };
  walk(dir);
  return out;
}

/** Where containerd pins pod network namespaces: its default, as on any node. */
export const POD_NETNS_DIR = '/var/run/netns';
const PIN_NAME = /^cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The pod namespace pins (`cni-<uuid>`) that a containerd metadata database (bbolt, read as
 * latin1) names: each sandbox's metadata holds its NetNSPath. Pure; exported for tests.
 */
export function podNetnsPins(metadata: string): string[] {
  const names = [...metadata.matchAll(/\/var\/run\/netns\/(cni-[0-9a-f-]{36})/g)].map((m) => m[1] ?? '');
  return [...new Set(names.filter((n) => PIN_NAME.test(n)))].sort();
}

/**
 * The pins of lab `id`'s pods in the host's /var/run/netns: the ones its containerds' metadata
 * names, and the ones its node namespaces see as a veth peer (ip netns list-id). Pins are shared
 * by every lab on the machine, so nothing else is taken.
 */
async function labPodNetnsPins(runner: Runner, id: string, dataDir: string): Promise<string[]> {
  const names = new Set<string>();
  let nodes: string[] = [];
  try {
    nodes = readdirSync(dataDir).filter((e) => /^n\d+$/.test(e));
  } catch {
    // no data dir
  }
  for (const n of nodes) {
    try {
      const db = readFileSync(join(dataDir, n, 'containerd', 'io.containerd.metadata.v1.bolt', 'meta.db'), 'latin1');
      for (const p of podNetnsPins(db)) names.add(p);
    } catch {
      // no database
    }
  }
  let netns: string[] = [];
  try {
    netns = readdirSync(POD_NETNS_DIR).filter((e) => e.startsWith(`kmc${id}-n`) && /^\d+$/.test(e.slice(`kmc${id}-n`.length)));
  } catch {
    // none
  }
  for (const ns of netns) {
    const ids = await new IpClient(runner, ns).netnsIds().catch(() => undefined);
    if (!ids) continue;
    for (const name of ids.values()) if (PIN_NAME.test(name)) names.add(name);
  }
  return [...names].filter((n) => existsSync(join(POD_NETNS_DIR, n))).sort();
}

function rmdirTree(dir: string): void {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmdirTree(join(dir, e.name));
    rmdirSync(dir);
  } catch {
    // busy or gone: reported by the caller's check
  }
}

/**
 * Removes what the cluster of lab `id` left outside its namespaces, also after a killed run
 * (nothing here reads the lab's state): the containers (by the node cgroups), the pods' network
 * namespace pins in /var/run/netns (a killed containerd leaves them), the mounts under its dirs
 * (overlay snapshots, kubelet volumes), the cgroups and the data dir.
 * labDown runs it after killing the processes in the lab's namespaces.
 */
export async function kubeCleanup(runner: Runner, id: string, labStateDir: string): Promise<{ processes: number; mounts: number }> {
  const prefix = `kmc${id}-n`;
  const cgroups = cgroupMounts(readFileSync('/proc/self/mounts', 'utf8'));
  const roots: string[] = [];
  for (const h of cgroups) {
    let entries: string[] = [];
    try {
      entries = readdirSync(h);
    } catch {
      continue;
    }
    for (const e of entries) if (e.startsWith(prefix) && /^n\d+$/.test(e.slice(prefix.length - 1))) roots.push(join(h, e));
  }
  const dirs = kubeDirs(labStateDir, id);
  // The host's forwarder runs in no lab namespace; its pid record is gone with a lost state dir,
  // so it is also found by the one argument that names this lab's socket.
  const fwdArg = `UNIX-CONNECT:${apiserverSocket(dirs)}`;
  const forwarders = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => cmdline(p)?.includes(fwdArg) === true);
  const pids = [...new Set([...roots.flatMap(cgroupPids), ...forwarders])].filter((p) => p !== process.pid && isAlive(p) && cmdline(p) !== undefined);
  const processes = await killPids(pids, 1000);
  // Before the node namespaces go (labDown deletes them after this): list-id needs their veths.
  for (const pin of await labPodNetnsPins(runner, id, dirs.data)) await new IpClient(runner).deleteNetns(pin);
  const points = mountsUnder(readFileSync('/proc/self/mountinfo', 'utf8'), [dirs.state, dirs.data]);
  for (const p of points) await runner.run(['umount', '-l', p], { allowFail: true });
  for (const r of roots) rmdirTree(r);
  await rm(dirs.data, { recursive: true, force: true });
  // Leave DATA_ROOT itself when other labs use it.
  try {
    if (readdirSync(DATA_ROOT).length === 0) rmdirSync(DATA_ROOT);
  } catch {
    // absent
  }
  return { processes, mounts: points.length };
}

/**
 * Gives an image every node's containerd holds a second name (`ctr images tag`), as a push of
 * the same image under a new tag would on a cluster with a registry: a DaemonSet set to `to`
 * rolls out without any image to pull (tests roll the kmcast DaemonSets this way).
 */
export async function tagImageOnNodes(runner: Runner, lab: Lab, from: string, to: string): Promise<void> {
  const dirs = kubeDirs(lab.stateDir, lab.spec.id);
  const ref = (name: string): string => (name.split('/')[0]?.includes('.') === true ? name : `docker.io/${name}`);
  for (const node of lab.nodes) await runner.run(ctrArgv(nodeDirs(dirs, node.index), ['images', 'tag', '--force', ref(from), ref(to)]), { timeoutMs: 60_000 });
}
