/**
 * Builds, changes and tears down the lab (DESIGN section 5). The address plan and the argv lists
 * are pure (plan.ts); this file runs them and keeps the state directory in step.
 *
 * The lab's namespace builder keeps its own argv: the `ip`, `bridge` and `sysctl` steps that wire
 * the test rig are listed in plan.ts, lan-plan.ts and kube/plan.ts, and this file and lan.ts run
 * them and a few more of the rig's own (`ip netns list/del`, the router's link changes, the LAN
 * switch's MDB). That is the rig, not kmcast: everything else, including the lab's process
 * helpers (process.ts) and its nftables script, runs ip, bridge, nft and sysctl through the
 * kernel clients in src/kernel, the only other code that writes their argv.
 */
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { ConfigError, InputError, KmcastError, NotFoundError, errorMessage } from '../errors.js';
import { NftClient } from '../kernel/nft.js';
import type { Runner } from '../kernel/runner.js';
import type { Logger } from '../log.js';
import type { Lab, LabPod, LabSpec } from './types.js';
import {
  NETNS_PREFIX,
  STATE_ROOT,
  findPodIn,
  hostPort,
  labNetnsPrefix,
  labStateDir,
  nextPodIndex,
  nodeCommands,
  podAddresses,
  podCidr6,
  masqueradeScript,
  nodeNetns,
  planLab,
  planPod,
  podCommands,
  podHostLink,
  podIndex,
  podResolvConf,
  routerCommands,
  routerLink,
  underlayNodeIp,
  underlayNodeIp6,
  underlayRouterIp6,
  podCidr,
  validateLabId,
} from './plan.js';
import type { LabCommand } from './plan.js';
import { addLan } from './lan.js';
import type { AddLanOptions } from './lan.js';
import { planLan } from './lan-plan.js';
import { DNS_SERVER_SCRIPT, cmdline, isAlive, killPids, netnsPids, spawnInNetns, spawned, waitFor } from './process.js';
import { dnsPidFile, dnsRecordsFile, listPidRecords, readDnsRecords, readLabState, saveLab, writeDnsRecords } from './state.js';
import { kubeCleanup, kubeUp } from './kube/cluster.js';
import { DATA_ROOT, kubeComponent, kubeComponents } from './kube/plan.js';

/** `ip netns exec NS` binds every file of /etc/netns/NS/ over /etc/ (here: resolv.conf). */
export const ETC_NETNS = '/etc/netns';

export interface LabUpOptions {
  readonly runner: Runner;
  readonly log?: Logger;
  readonly onProgress?: (msg: string) => void;
  /** Also build the outside LAN attached to these nodes (see lan-plan.ts). */
  readonly lan?: AddLanOptions;
  /** Also run a Kubernetes cluster on the lab's nodes (src/lab/kube). */
  readonly kubernetes?: boolean;
}

async function runAll(runner: Runner, cmds: readonly LabCommand[]): Promise<void> {
  for (const c of cmds) await runner.run(c.argv, { netns: c.netns });
}

/** Names from `ip netns list` ("name (id: 3)" or "name"). Pure; exported for tests. */
export function parseNetnsList(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

async function listNetns(runner: Runner): Promise<string[]> {
  return parseNetnsList((await runner.run(['ip', 'netns', 'list'])).stdout);
}

async function writeResolvConf(lab: Lab, pod: LabPod): Promise<void> {
  const dir = join(ETC_NETNS, pod.netns);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'resolv.conf'), podResolvConf(lab.spec));
}

/** Builds the whole lab and starts its DNS server; on any failure removes what it built. */
export async function labUp(spec: LabSpec, opts: LabUpOptions): Promise<Lab> {
  const { runner, log } = opts;
  const progress = (msg: string): void => {
    log?.debug({ lab: spec.id }, msg);
    opts.onProgress?.(msg);
  };
  validateLabId(spec.id);
  const existing = (await listNetns(runner)).filter((n) => n.startsWith(labNetnsPrefix(spec.id)));
  if (existing.length > 0) {
    throw new ConfigError(
      `build lab ${spec.id}: it already exists (${existing.length} namespaces such as ${existing[0] ?? ''}): run \`kmcast lab down --id ${spec.id}\` first or pick another --id`,
    );
  }
  const lab = planLab(spec);
  if (opts.lan) planLan(spec, opts.lan); // refuse bad LAN input before anything is built
  try {
    // A stale state dir (a lab whose namespaces vanished with a reboot or by hand) is replaced.
    await rm(lab.stateDir, { recursive: true, force: true });
    await mkdir(lab.stateDir, { recursive: true });
    await saveLab(lab);
    progress(`router ${lab.router}: forwards unicast between nodes, never multicast`);
    await runAll(runner, routerCommands(spec));
    await Promise.all(
      lab.nodes.map(async (node) => {
        await runAll(runner, nodeCommands(spec, node.index));
        progress(`node ${node.netns} (${node.style}): underlay ${node.underlayIp}, pods ${node.podCidr}`);
        const pods = lab.pods.filter((p) => p.node === node.index);
        await Promise.all(
          pods.map(async (pod) => {
            await runAll(runner, podCommands(spec, pod.node, podIndex(pod)));
            await writeResolvConf(lab, pod);
          }),
        );
      }),
    );
    progress(`${lab.pods.length} pods: ${lab.pods.map((p) => `${p.name}=${podAddresses(p).join(',')}`).join(' ')}`);
    await setServiceMembers(lab, lab.pods.flatMap(podAddresses));
    if (opts.lan) {
      const lan = await addLan(lab, runner, opts.lan);
      progress(
        `lan ${lan.netns} ${lan.cidr}: hosts ${lan.hosts.map((h) => `${h.name}=${h.ip}`).join(' ')}; nodes ${lan.nodes.map((n) => `n${n.node}=${n.ip}`).join(' ')}`,
      );
    }
    await startDns(lab);
    progress(`dns ${hostPort(lab.dns.ip, lab.dns.port)}: ${spec.service} -> ${lab.pods.length} pod IPs${spec.ipv6 ? ' (A and AAAA)' : spec.ipv6Only ? ' (AAAA only)' : ''}`);
    await saveLab(lab);
    if (opts.kubernetes) {
      lab.kube = await kubeUp(lab, { runner, onProgress: progress });
      await saveLab(lab);
    }
    return lab;
  } catch (err) {
    log?.warn({ lab: spec.id, err: errorMessage(err) }, 'lab build failed; removing what was built');
    await labDown(runner, { id: spec.id }).catch((e: unknown) => log?.error({ err: errorMessage(e) }, 'cleanup failed'));
    throw err;
  }
}

/**
 * Removes a lab (or, without id, every `kmc*` namespace and leftover): the processes inside its
 * namespaces (found by scanning the namespaces, so it works when state.json is gone), the
 * processes it recorded, the namespaces, /etc/netns entries and the state dir.
 */
export async function labDown(runner: Runner, opts: { id?: string } = {}): Promise<{ namespaces: string[]; processes: number }> {
  const prefix = opts.id === undefined ? NETNS_PREFIX : labNetnsPrefix(validateLabId(opts.id));
  const namespaces = (await listNetns(runner)).filter((n) => n.startsWith(prefix));

  const stateDirs = opts.id === undefined ? await subdirs(STATE_ROOT) : [labStateDir(opts.id)];
  const pids = new Set<number>();
  for (const dir of stateDirs) {
    for (const rec of await listPidRecords(dir)) {
      // Only kill a recorded pid that still runs the recorded command: pids get reused.
      const cl = cmdline(rec.pid);
      if (cl && isAlive(rec.pid) && cl.join('\0') === rec.argv.join('\0')) pids.add(rec.pid);
    }
  }
  for (const ns of namespaces) for (const pid of await netnsPids(ns)) pids.add(pid);
  pids.delete(process.pid); // never ourselves, should we have been started inside a lab pod
  let processes = await killPids([...pids]);
  // A Kubernetes cluster's containers live in namespaces of containerd's, its mounts and cgroups
  // outside any lab namespace: found by the lab id alone, so a killed run is cleaned up too.
  const kubeIds = opts.id === undefined ? [...new Set([...(await subdirs(STATE_ROOT)), ...(await subdirs(DATA_ROOT))])] : [opts.id];
  for (const id of kubeIds) {
    if (!/^[a-z0-9]{1,12}$/.test(id)) continue;
    processes += (await kubeCleanup(runner, id, labStateDir(id))).processes;
  }

  const deleted: string[] = [];
  const failures: string[] = [];
  // Pods and LAN hosts first, then nodes, then the router and the LAN switch: a veth's peer dies
  // with either end's namespace.
  const order = (n: string): number => (/(p\d+|-h\d+)$/.test(n) ? 0 : /-(r|lan)$/.test(n) ? 2 : 1);
  for (const ns of [...namespaces].sort((a, b) => order(a) - order(b))) {
    const r = await runner.run(['ip', 'netns', 'del', ns], { allowFail: true });
    if (r.code === 0) deleted.push(ns);
    else failures.push(`${ns}: ${r.stderr.trim()}`);
  }
  for (const name of await subdirs(ETC_NETNS)) {
    if (name.startsWith(prefix)) await rm(join(ETC_NETNS, name), { recursive: true, force: true });
  }
  for (const dir of stateDirs) await rm(dir, { recursive: true, force: true });
  if (failures.length > 0) {
    throw new KmcastError(`remove lab namespaces: ${failures.length} could not be deleted:\n${failures.join('\n')}`);
  }
  return { namespaces: deleted, processes };
}

async function subdirs(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** The lab recorded in its state file, or undefined when there is none. */
export async function loadLab(id: string): Promise<Lab | undefined> {
  return await readLabState(validateLabId(id));
}

/** Ids of the labs that have a state file. */
export async function listLabs(): Promise<string[]> {
  const out: string[] = [];
  for (const id of await subdirs(STATE_ROOT)) {
    try {
      await stat(join(STATE_ROOT, id, 'state.json'));
      out.push(id);
    } catch {
      // a dir without state: only labDown cares
    }
  }
  return out.sort();
}

function requireNode(lab: Lab, node: number): void {
  if (!lab.nodes.some((n) => n.index === node)) {
    throw new NotFoundError(`find node ${node} in lab ${lab.spec.id}: the lab has nodes 1 to ${lab.nodes.length}`);
  }
}

/**
 * A new pod on `node` (never reusing a name, so a new namespace and a new host veth); its IP (and
 * in a dual-stack lab its IPv6 twin, LabPod.ip6) joins the Service's DNS answer. `opts.ip` gives it a removed pod's IP, as IPAM does when it hands a
 * freed address out again or a StatefulSet pod is re-created.
 */
export async function addPod(lab: Lab, node: number, runner: Runner, opts: { ip?: string } = {}): Promise<LabPod> {
  requireNode(lab, node);
  const pod = planPod(lab.spec, node, nextPodIndex(lab.pods, node), opts.ip);
  const holder = lab.pods.find((p) => p.ip === pod.ip);
  if (holder) throw new ConfigError(`add a pod with IP ${pod.ip} on node ${node}: pod ${holder.name} still has it; remove it first`);
  await runAll(runner, podCommands(lab.spec, node, podIndex(pod), opts.ip));
  await writeResolvConf(lab, pod);
  lab.pods.push(pod);
  await addServiceMembers(lab, podAddresses(pod));
  await saveLab(lab);
  return pod;
}

async function readMembers(lab: Lab): Promise<string[]> {
  try {
    const records = JSON.parse(await readFile(dnsRecordsFile(lab.stateDir), 'utf8')) as Record<string, string[]>;
    return records[lab.spec.service] ?? [];
  } catch {
    return [];
  }
}

async function addServiceMembers(lab: Lab, ips: readonly string[]): Promise<void> {
  const members = await readMembers(lab);
  const added = ips.filter((ip) => !members.includes(ip));
  if (added.length > 0) await setServiceMembers(lab, [...members, ...added]);
}

/** Kills the pod's processes and deletes it; its IPs leave the Service's DNS answer. */
export async function removePod(lab: Lab, pod: LabPod, runner: Runner): Promise<void> {
  await killPids(await netnsPids(pod.netns));
  // The host veth normally dies with the pod namespace; deleting it first also covers a namespace
  // kept alive by a stray reference.
  await runner.run(['ip', 'link', 'del', podHostLink(podIndex(pod))], { netns: nodeNetns(lab.spec.id, pod.node), allowFail: true });
  await runner.run(['ip', 'netns', 'del', pod.netns], { allowFail: true });
  await rm(join(ETC_NETNS, pod.netns), { recursive: true, force: true });
  lab.pods = lab.pods.filter((p) => p.netns !== pod.netns);
  const gone = podAddresses(pod);
  await setServiceMembers(
    lab,
    (await readMembers(lab)).filter((ip) => !gone.includes(ip)),
  );
  await saveLab(lab);
}

/**
 * Replaces the Service's members; the DNS server re-reads them on the next query. Each address
 * answers for its family: IPv4 ones as A records, IPv6 ones as AAAA (a dual-stack lab's pods have
 * both: `lab.pods.flatMap(podAddresses)`; a list of IPv4 addresses alone leaves AAAA empty).
 */
export async function setServiceMembers(lab: Lab, ips: readonly string[]): Promise<void> {
  await setDnsRecord(lab, lab.spec.service, ips);
}

/**
 * Replaces the A and AAAA records of `name` (another headless Service, e.g. a second node-mode
 * domain or the node agents' own), keeping every other name the lab DNS answers.
 */
export async function setDnsRecord(lab: Lab, name: string, ips: readonly string[]): Promise<void> {
  const bad = ips.filter((ip) => isIP(ip) === 0);
  if (bad.length > 0) throw new InputError(`set DNS records of ${name}: not IPv4 or IPv6 addresses: ${bad.join(', ')}`);
  const records = await readDnsRecords(lab.stateDir);
  await writeDnsRecords(lab.stateDir, { ...records, [name.replace(/\.$/, '').toLowerCase()]: [...ips] });
}

async function readDnsPid(lab: Lab): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(dnsPidFile(lab.stateDir), 'utf8')).trim());
    const cl = cmdline(pid);
    return Number.isInteger(pid) && isAlive(pid) && cl?.includes(DNS_SERVER_SCRIPT) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops the lab DNS (queries then time out, as when CoreDNS is down). */
export async function stopDns(lab: Lab): Promise<void> {
  const pid = await readDnsPid(lab);
  if (pid !== undefined) await killPids([pid]);
  await rm(dnsPidFile(lab.stateDir), { force: true });
}

/** Starts the lab DNS in the router namespace unless it runs; resolves once it listens. */
export async function startDns(lab: Lab): Promise<void> {
  if ((await readDnsPid(lab)) !== undefined) return;
  const logFile = join(lab.stateDir, 'dns.log');
  let offset = 0;
  try {
    offset = (await stat(logFile)).size;
  } catch {
    // first start
  }
  const argv = [process.execPath, DNS_SERVER_SCRIPT, '--records', dnsRecordsFile(lab.stateDir), '--listen', hostPort(lab.dns.ip, lab.dns.port)];
  const child = spawnInNetns(lab.router, argv, { logFile, detached: true });
  await spawned(child, 'the lab DNS server');
  await writeFile(dnsPidFile(lab.stateDir), `${child.pid ?? ''}\n`);
  await waitFor(
    `the lab DNS server to listen on ${hostPort(lab.dns.ip, lab.dns.port)} (log: ${logFile})`,
    async () => {
      if (child.exitCode !== null) throw new KmcastError(`it exited with code ${child.exitCode}`);
      const log = (await readFile(logFile)).subarray(offset).toString();
      return log.includes('listening on');
    },
    10_000,
    20,
  );
}

/** Masquerades node `node`'s pod traffic to the underlay (see masqueradeScript). */
export async function masqueradePods(lab: Lab, node: number, runner: Runner): Promise<void> {
  requireNode(lab, node);
  await new NftClient(runner, nodeNetns(lab.spec.id, node)).apply(masqueradeScript(lab.spec, node));
}

/** Takes the router side of node `node`'s uplink down: the node is cut off (a network partition). */
export async function cutNode(lab: Lab, node: number, runner: Runner): Promise<void> {
  requireNode(lab, node);
  await runner.run(['ip', 'link', 'set', routerLink(node), 'down'], { netns: lab.router });
}

/**
 * Brings the uplink back; the kernel dropped the route to the node's pods with the link, so it is
 * restored. IPv6 drops the link's addresses too when it goes down (keep_addr_on_down is 0), so a
 * dual-stack or IPv6-only lab gets the router's uplink address and the pod /64 route back as well.
 */
export async function healNode(lab: Lab, node: number, runner: Runner): Promise<void> {
  requireNode(lab, node);
  await runner.run(['ip', 'link', 'set', routerLink(node), 'up'], { netns: lab.router });
  if (!lab.spec.ipv6Only) await runner.run(['ip', 'route', 'replace', podCidr(node), 'via', underlayNodeIp(node)], { netns: lab.router });
  if (lab.spec.ipv6 || lab.spec.ipv6Only) {
    await runner.run(['ip', '-6', 'addr', 'replace', `${underlayRouterIp6(node)}/64`, 'dev', routerLink(node)], { netns: lab.router });
    await runner.run(['ip', '-6', 'route', 'replace', podCidr6(node), 'via', underlayNodeIp6(node)], { netns: lab.router });
  }
}

/** The pod by short name ('n1p2') or namespace name; NotFoundError lists the valid names. */
export function findPod(lab: Lab, name: string): LabPod {
  return findPodIn(lab.pods, name, lab.spec.id);
}

/** A namespace `lab exec` runs in: a pod ('n1p2') or a LAN host ('h1'), by short or namespace name. */
export function findExecTarget(lab: Lab, name: string): { kind: 'pod' | 'LAN host'; name: string; netns: string } {
  const pod = lab.pods.find((p) => p.name === name || p.netns === name);
  if (pod) return { kind: 'pod', name: pod.name, netns: pod.netns };
  const host = lab.lan?.hosts.find((h) => h.name === name || h.netns === name);
  if (host) return { kind: 'LAN host', name: host.name, netns: host.netns };
  const names = [...lab.pods.map((p) => p.name), ...(lab.lan?.hosts.map((h) => h.name) ?? [])].join(', ');
  throw new NotFoundError(`find ${JSON.stringify(name)} in lab ${lab.spec.id}: no such pod or LAN host; the names are ${names || '(none)'}`);
}

export interface LabHealth {
  /** Lab namespaces that should exist and do not (a lab damaged by hand or half torn down). */
  readonly missingNamespaces: string[];
  readonly dns: { readonly running: boolean; readonly pid?: number; readonly members: string[] };
  /** Pod short name -> pid of the kmcast agent running in it. */
  readonly agents: Record<string, number>;
  /** With a Kubernetes cluster: its components that should run and do not, e.g. 'kubelet on kmck1-n2'. */
  readonly kubeDown?: string[];
}

/** What runs and what is missing in a lab, from the kernel and /proc (not from the state file). */
export async function labHealth(lab: Lab, runner: Runner): Promise<LabHealth> {
  const present = new Set(await listNetns(runner));
  const lan = lab.lan ? [lab.lan.netns, ...lab.lan.hosts.map((h) => h.netns)] : [];
  const expected = [lab.router, ...(lab.kube ? [lab.kube.controlPlane] : []), ...lab.nodes.map((n) => n.netns), ...lab.pods.map((p) => p.netns), ...lan];
  const dnsPid = await readDnsPid(lab);
  const agents: Record<string, number> = {};
  const running = new Set<string>();
  for (const rec of await listPidRecords(lab.stateDir)) {
    const pod = lab.pods.find((p) => p.netns === rec.netns);
    const cl = cmdline(rec.pid);
    const alive = isAlive(rec.pid) && cl?.join('\0') === rec.argv.join('\0');
    if (pod && alive && rec.argv.includes('agent')) agents[pod.name] = rec.pid;
    if (alive) running.add(kubeComponent(rec.argv[0] ?? '', rec.netns));
  }
  const kubeExpected = lab.kube ? kubeComponents(lab.kube.controlPlane, lab.nodes.map((n) => n.netns)) : [];
  return {
    missingNamespaces: expected.filter((n) => !present.has(n)),
    dns: { running: dnsPid !== undefined, ...(dnsPid === undefined ? {} : { pid: dnsPid }), members: await readMembers(lab) },
    agents,
    ...(lab.kube ? { kubeDown: kubeExpected.filter((c) => !running.has(c)) } : {}),
  };
}
