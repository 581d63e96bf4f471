/**
 * `kmcast doctor`: checks, from inside a pod, everything the agent needs. Two halves:
 * `gatherFacts` reads the system through narrow dependencies (the kernel clients over a Runner, file reads,
 * DNS, a UDP probe, the agent's /status), and `evaluate` turns the facts into OK / WARN / FAIL
 * verdicts with a fix. `evaluate` is pure, so every verdict is tested on fixture facts.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { constants as fsConstants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { errorMessage } from '../errors.js';
import { MDB_DST_MIN_VERSION, parseIpv4Addrs, parseIpVersion, parseLink, parseRoutes, versionAtLeast } from '../kernel/parse.js';
import { IpClient } from '../kernel/ip.js';
import type { RunResult, Runner } from '../kernel/runner.js';
import { vxlanOverhead } from '../overlay/desired.js';
import type { SocketFacts } from './doctor-eth0.js';
import { checkBoundSockets, checkCapture, gatherSockets } from './doctor-eth0.js';
import { CAP_NET_ADMIN, capEffOf, effectiveRpFilter, hasCapability, RP_FILTER_FIX } from './host.js';
import { fetchAgentStatus, formatTable } from './status-format.js';
import type { AgentStatus, PeerState } from './status-types.js';

import type { CheckResult, CheckStatus } from '../runtime/checks.js';
export type { CheckResult, CheckStatus } from '../runtime/checks.js';

export interface DoctorOptions {
  /** Underlay interface; undefined = the interface of the IPv4 default route (as the agent does). */
  readonly interface?: string | undefined;
  readonly device: string;
  readonly service?: string | undefined;
  /** `IP` or `IP:PORT`. */
  readonly dnsServer?: string | undefined;
  readonly peers: readonly string[];
  readonly controlPort: number;
  readonly statusUrl: string;
  /** This pod's IP when known (env KMCAST_POD_IP); otherwise the underlay's first IPv4 address. */
  readonly podIp?: string | undefined;
  /** How long to wait for an ICMP error after the UDP probe of each peer. */
  readonly probeTimeoutMs?: number;
}

/** Below this an overlay cannot carry IPv6 (RFC 8200 minimum) and many apps' datagrams fragment. */
export const MIN_OVERLAY_MTU = 1280;
/** Kernel and iproute2 6.3 added VXLAN MDB entries with `dst` (per-group replication). */
export const MDB_MIN_VERSION = MDB_DST_MIN_VERSION;

export type ProbeOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

export interface LinkFacts {
  readonly name: string;
  readonly exists: boolean;
  readonly mtu: number | null;
  readonly kind: string | null;
  readonly ipv4: readonly string[];
}

export interface DoctorFacts {
  /** Hex CapEff from /proc/self/status; null when unreadable. */
  readonly capEff: string | null;
  readonly uid: number | null;
  readonly kernelRelease: string;
  /** Name of the throwaway link and the outcome of creating it. */
  readonly vxlanProbe: { readonly link: string } & ProbeOutcome;
  /** Adding a `dst` MDB entry on the throwaway link; null when the link could not be created. */
  readonly mdbProbe: ProbeOutcome | null;
  /** `ip -V` output; null when `ip` could not run. */
  readonly ipVersion: string | null;
  /** `bridge mdb help` output (stdout and stderr); null when `bridge` could not run. */
  readonly mdbHelp: string | null;
  readonly underlay: (LinkFacts & { readonly from: 'flag' | 'default-route' }) | { readonly error: string };
  readonly device: LinkFacts;
  /** rp_filter values from /proc/sys/net/ipv4/conf/<x>/rp_filter; null when unreadable or absent. */
  readonly rpFilter: {
    readonly all: number | null;
    readonly default: number | null;
    readonly underlay: number | null;
    readonly device: number | null;
  };
  readonly procSys: { readonly writable: boolean; readonly error?: string; readonly readOnlyMount: boolean };
  readonly ownIp: string | null;
  readonly dns: { readonly service: string; readonly server: string; readonly addresses: readonly string[] } | { readonly service: string; readonly server: string; readonly error: string } | null;
  readonly agent: { readonly url: string; readonly status: AgentStatus } | { readonly url: string; readonly error: string };
  /** UDP probes of the peers' control port (only when the agent's /status was not available). */
  readonly peerProbes: readonly { readonly ip: string; readonly error: string | null }[];
  /** UDP and raw sockets with their bound device (doctor-eth0.ts); absent in older fact sets. */
  readonly sockets?: SocketFacts;
}

/** Side effects `gatherFacts` needs; interface is created to allow testing. */
export interface DoctorDeps {
  readonly runner: Runner;
  readFile(path: string): Promise<string>;
  /** Opens `path` for writing and closes it without writing; rejects with the errno error. */
  probeWrite(path: string): Promise<void>;
  resolve4(name: string, server: string | undefined): Promise<string[]>;
  /** The AAAA records, asked for an IPv6 pod IP (an IPv6-only pod); without it those pods' DNS check has A records only. */
  resolve6?(name: string, server: string | undefined): Promise<string[]>;
  /** Sends one empty datagram to ip:port on a connected socket; resolves to the error code or null. */
  probeUdp(ip: string, port: number, timeoutMs: number): Promise<string | null>;
  fetchStatus(url: string): Promise<AgentStatus>;
  uid(): number | null;
  kernelRelease(): string;
  randomSuffix(): string;
}

// ---------------------------------------------------------------------------------------------
// Gathering facts (touches the system only through DoctorDeps)

const RP = (dev: string): string => `/proc/sys/net/ipv4/conf/${dev}/rp_filter`;

/** The throwaway link's VNI and port: values no real overlay uses, so a running vx0 never clashes. */
const PROBE_VNI = '16777001';
const PROBE_PORT = '7479';

export async function gatherFacts(opts: DoctorOptions, deps: DoctorDeps): Promise<DoctorFacts> {
  const ip = new IpClient(deps.runner);
  const status = await readText(deps, '/proc/self/status');
  const capEff = status === null ? null : capEffOf(status);

  // A throwaway link proves the kernel module and the capability in one step; creating it in the
  // current namespace only, never on the node. Its MDB entry points at TEST-NET-1 and the link is
  // never brought up, so nothing is ever sent.
  const link = `kmcdoc${deps.randomSuffix()}`;
  // A VNI and port no real overlay uses: the kernel refuses a second device with the VNI and
  // port of a running vx0 ("A VXLAN device with the specified VNI already exists").
  const add = await tryRun(ip.probeVxlan(link, PROBE_VNI, PROBE_PORT, PROBE));
  let mdbProbe: ProbeOutcome | null = null;
  if (add.ok) {
    try {
      mdbProbe = await tryRun(ip.bridge.probeMdbDst(link, '239.255.0.1', '192.0.2.1', PROBE));
    } finally {
      await tryRun(ip.deleteLink(link, PROBE));
    }
  }

  const ipVersion = await outputOf(ip.versionOutput(PROBE));
  // `bridge mdb help` prints its usage on stderr and exits 255: the text is the answer.
  const mdbHelp = await outputOf(ip.bridge.mdbHelp(PROBE));

  let underlay: DoctorFacts['underlay'] = { error: 'no IPv4 default route' };
  let underlayName: string | undefined = opts.interface;
  if (underlayName !== undefined) {
    underlay = { ...(await linkFacts(ip, underlayName)), from: 'flag' };
  } else {
    const r = await tryRunOut(ip.defaultRoutes4Output(PROBE));
    if ('error' in r) underlay = { error: `read the default route: ${r.error}` };
    else underlayName = defaultRouteDevice(r.stdout);
    // An IPv6-only pod has no IPv4 default route: its IPv6 one names the underlay.
    if (underlayName === undefined && !('error' in r)) underlayName = (await ip.defaultRoutes6().catch(() => []))[0]?.dev;
    if (underlayName !== undefined) underlay = { ...(await linkFacts(ip, underlayName)), from: 'default-route' };
  }
  const device = await linkFacts(ip, opts.device);

  const rpFilter = {
    all: parseIntOrNull(await readText(deps, RP('all'))),
    default: parseIntOrNull(await readText(deps, RP('default'))),
    underlay: underlayName === undefined ? null : parseIntOrNull(await readText(deps, RP(underlayName))),
    device: device.exists ? parseIntOrNull(await readText(deps, RP(opts.device))) : null,
  };

  let procSys: DoctorFacts['procSys'];
  const mountinfo = await readText(deps, '/proc/self/mountinfo');
  const readOnlyMount = mountinfo !== null && procSysReadOnly(mountinfo);
  try {
    await deps.probeWrite(RP('all'));
    procSys = { writable: true, readOnlyMount };
  } catch (err) {
    procSys = { writable: false, error: (err as NodeJS.ErrnoException).code ?? errorMessage(err), readOnlyMount };
  }

  // As the agent finds it (spec.ts): the underlay's first IPv4 address, else its first global IPv6 one.
  const firstIpv6 = async (dev: string): Promise<string | null> => (await ip.addrs6(dev).catch(() => []))[0]?.split('/')[0] ?? null;
  const ownIp = opts.podIp ?? ('ipv4' in underlay ? (underlay.ipv4[0] ?? (underlay.exists ? await firstIpv6(underlay.name) : null)) : null);

  let dns: DoctorFacts['dns'] = null;
  if (opts.service !== undefined) {
    const server = opts.dnsServer ?? 'system resolver';
    try {
      // The records of the pod IP's family, as the agent asks (AAAA for an IPv6 pod IP).
      const ipv6 = ownIp?.includes(':') === true && deps.resolve6 !== undefined;
      dns = { service: opts.service, server, addresses: ipv6 ? await deps.resolve6!(opts.service, opts.dnsServer) : await deps.resolve4(opts.service, opts.dnsServer) };
    } catch (err) {
      dns = { service: opts.service, server, error: (err as NodeJS.ErrnoException).code ?? errorMessage(err) };
    }
  }

  let agent: DoctorFacts['agent'];
  try {
    agent = { url: opts.statusUrl, status: await deps.fetchStatus(opts.statusUrl) };
  } catch (err) {
    agent = { url: opts.statusUrl, error: errorMessage(err) };
  }

  // The agent knows its peers' liveness from their heartbeats, which beats any probe from here.
  const peerProbes: { ip: string; error: string | null }[] = [];
  if (!('status' in agent)) {
    const timeout = opts.probeTimeoutMs ?? 500;
    const targets = expectedPeers(opts.peers, dns, ownIp);
    const results = await Promise.all(targets.map((ip) => deps.probeUdp(ip, opts.controlPort, timeout)));
    targets.forEach((ip, i) => peerProbes.push({ ip, error: results[i] ?? null }));
  }

  return {
    capEff,
    uid: deps.uid(),
    kernelRelease: deps.kernelRelease(),
    vxlanProbe: { link, ...add },
    mdbProbe,
    ipVersion,
    mdbHelp,
    underlay,
    device,
    rpFilter,
    procSys,
    ownIp,
    dns,
    agent,
    peerProbes,
    sockets: await gatherSockets(deps.runner),
  };
}

/** Peers the agent would have: --peers plus the service's A records, without this pod's own IP. */
export function expectedPeers(peers: readonly string[], dns: DoctorFacts['dns'], ownIp: string | null): string[] {
  const fromDns = dns !== null && 'addresses' in dns ? dns.addresses : [];
  return [...new Set([...peers, ...fromDns])].filter((ip) => ip !== ownIp);
}

async function readText(deps: DoctorDeps, path: string): Promise<string | null> {
  try {
    return await deps.readFile(path);
  } catch {
    return null;
  }
}

/** The doctor's probes resolve whatever the exit code; each is killed after 10 s. */
const PROBE = { timeoutMs: 10_000 };

async function tryRun(probe: Promise<RunResult>): Promise<ProbeOutcome> {
  try {
    const r = await probe;
    if (r.code === 0) return { ok: true };
    return { ok: false, error: r.stderr.trim() || `exit code ${r.code}` };
  } catch (err) {
    return { ok: false, error: errorMessage(err) };
  }
}

async function tryRunOut(probe: Promise<RunResult>): Promise<{ stdout: string } | { error: string }> {
  try {
    const r = await probe;
    if (r.code === 0) return { stdout: r.stdout };
    return { error: r.stderr.trim() || `exit code ${r.code}` };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

/** stdout+stderr of a command whatever its exit code; null when it could not be started. */
async function outputOf(probe: Promise<RunResult>): Promise<string | null> {
  try {
    const r = await probe;
    return `${r.stdout}${r.stderr}`;
  } catch {
    return null;
  }
}

async function linkFacts(ip: IpClient, name: string): Promise<LinkFacts> {
  const none: LinkFacts = { name, exists: false, mtu: null, kind: null, ipv4: [] };
  const r = await tryRunOut(ip.addrDetailsOutput(name, PROBE));
  if ('error' in r) return none;
  return linkFactsOf(r.stdout, name) ?? none;
}

/** Pure: the LinkFacts of `ip -j -d addr show dev NAME` output; undefined when it lists nothing or is not JSON. */
export function linkFactsOf(stdout: string, name: string): LinkFacts | undefined {
  try {
    const link = parseLink(stdout);
    if (link === undefined) return undefined;
    const ipv4 = parseIpv4Addrs(stdout).map((a) => a.split('/')[0]!);
    return { name, exists: true, mtu: link.mtu > 0 ? link.mtu : null, kind: link.kind ?? null, ipv4 };
  } catch {
    return undefined;
  }
}

/** Pure: the device of the first IPv4 default route in `ip -j -4 route show default` output. */
export function defaultRouteDevice(stdout: string): string | undefined {
  try {
    return parseRoutes(stdout).find((r) => r.dev !== undefined)?.dev;
  } catch {
    return undefined;
  }
}

/** Pure: whether /proc/sys (or /proc) is mounted read-only, from /proc/self/mountinfo. */
export function procSysReadOnly(mountinfo: string): boolean {
  // Field 5 is the mount point, field 6 the per-mount options (proc(5)); the most specific mount
  // covering /proc/sys wins, and containers bind /proc/sys read-only over a writable /proc.
  let best: { point: string; ro: boolean } | undefined;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const point = f[4];
    const opts = f[5];
    if (point === undefined || opts === undefined) continue;
    if (point !== '/proc/sys' && point !== '/proc') continue;
    if (best === undefined || point.length >= best.point.length) best = { point, ro: opts.split(',').includes('ro') };
  }
  return best?.ro ?? false;
}

function parseIntOrNull(text: string | null): number | null {
  if (text === null) return null;
  const n = Number.parseInt(text.trim(), 10);
  return Number.isNaN(n) ? null : n;
}

// ---------------------------------------------------------------------------------------------
// Evaluating facts (pure)

/** Pure: [major, minor] of a kernel release ("6.18.44-fc", "5.15.0-91-generic"). */
export function parseKernelVersion(text: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

function rpName(v: number): string {
  return v === 0 ? 'off' : v === 1 ? 'strict' : v === 2 ? 'loose' : `unknown mode ${v}`;
}

const FIX_NET_ADMIN = 'add NET_ADMIN to the kmcast container: securityContext.capabilities.add: ["NET_ADMIN"] (kmcast inject does this)';
// The agent's own advice: the agent exits 3 with it where strict rp_filter cannot be loosened.
const FIX_RP = RP_FILTER_FIX;

export function evaluate(f: DoctorFacts, opts: DoctorOptions): CheckResult[] {
  return [
    checkNetAdmin(f),
    checkVxlan(f),
    checkMdb(f),
    checkUnderlayRp(f),
    checkOverlayRp(f, opts),
    checkMtu(f),
    checkProcSys(f),
    checkDns(f),
    checkAgent(f),
    ...checkPeers(f, opts),
    // Apps that name eth0 (doctor-eth0.ts).
    checkCapture('status' in f.agent ? f.agent.status : undefined),
    checkBoundSockets(f.sockets, 'name' in f.underlay ? f.underlay.name : opts.interface),
  ];
}

function checkNetAdmin(f: DoctorFacts): CheckResult {
  const base = { id: 'net-admin', title: 'NET_ADMIN capability' };
  if (f.capEff === null) {
    return { ...base, status: 'WARN', detail: 'cannot read CapEff from /proc/self/status', fix: FIX_NET_ADMIN };
  }
  if (hasCapability(f.capEff, CAP_NET_ADMIN)) return { ...base, status: 'OK', detail: `present (CapEff ${f.capEff})` };
  const who = f.uid === 0 ? 'running as root, but the container runtime dropped it' : `uid ${f.uid ?? '?'}`;
  return { ...base, status: 'FAIL', detail: `missing from CapEff ${f.capEff} (${who})`, fix: FIX_NET_ADMIN };
}

function checkVxlan(f: DoctorFacts): CheckResult {
  const base = { id: 'vxlan', title: 'VXLAN support' };
  const p = f.vxlanProbe;
  if (p.ok) return { ...base, status: 'OK', detail: `created and deleted a test vxlan link (${p.link})` };
  const e = p.error;
  if (/not permitted|permission denied/i.test(e)) {
    return { ...base, status: 'FAIL', detail: `cannot create a vxlan link: ${e}`, fix: FIX_NET_ADMIN };
  }
  if (/unknown device type|not supported|no such file/i.test(e)) {
    return {
      ...base,
      status: 'FAIL',
      detail: `the kernel has no vxlan driver: ${e}`,
      fix: 'load the module on the node (modprobe vxlan; a kernel built with CONFIG_VXLAN)',
    };
  }
  if (/not found|ENOENT|spawn/i.test(e)) {
    return { ...base, status: 'FAIL', detail: `cannot run ip: ${e}`, fix: 'install iproute2 in the image' };
  }
  return { ...base, status: 'FAIL', detail: `cannot create a vxlan link: ${e}`, fix: FIX_NET_ADMIN };
}

function checkMdb(f: DoctorFacts): CheckResult {
  const base = { id: 'mdb', title: 'iproute2 and VXLAN MDB (per-group replication)' };
  const fallback = 'the agent falls back to flooding every group to every peer (replication: flood)';
  const fixTools = 'use an image with iproute2 >= 6.3 (Debian trixie or bookworm-backports, Alpine >= 3.18); BusyBox ip is not enough';
  if (f.ipVersion === null) {
    return { ...base, status: 'FAIL', detail: 'cannot run ip', fix: 'install iproute2 (>= 6.3) in the image' };
  }
  const v = parseIpVersion(f.ipVersion);
  const kv = parseKernelVersion(f.kernelRelease);
  // Builds before 4.x were date-stamped ("iproute2-ss200127"): all far older than 6.3.
  const dated = /iproute2-ss\d+\b/.test(f.ipVersion);
  const vText = v !== undefined ? `iproute2 ${v[0]}.${v[1]}` : dated ? 'iproute2 (date-stamped, older than 6.3)' : `unrecognised ip -V output "${f.ipVersion.trim()}"`;
  const kText = `kernel ${f.kernelRelease}`;
  if (v === undefined || !versionAtLeast(v, MDB_MIN_VERSION)) {
    return { ...base, status: 'WARN', detail: `${vText} cannot add MDB entries with dst: ${fallback}`, fix: fixTools };
  }
  if (f.mdbHelp === null || !/\bdst\b/.test(f.mdbHelp)) {
    return {
      ...base,
      status: 'WARN',
      detail: `${vText}, but "bridge mdb help" does not mention dst: ${fallback}`,
      fix: f.mdbHelp === null ? 'install the bridge tool (iproute2) in the image' : fixTools,
    };
  }
  if (f.mdbProbe !== null) {
    if (f.mdbProbe.ok) return { ...base, status: 'OK', detail: `${vText}, ${kText}: added a test MDB entry with dst` };
    return {
      ...base,
      status: 'WARN',
      detail: `${vText}, ${kText}: adding a test MDB entry with dst failed (${f.mdbProbe.error}): ${fallback}`,
      fix: 'run on nodes with kernel >= 6.3',
    };
  }
  // No test link (no capability): judge by versions alone.
  if (kv !== undefined && !versionAtLeast(kv, MDB_MIN_VERSION)) {
    return { ...base, status: 'WARN', detail: `${vText}, but ${kText} is older than 6.3: ${fallback}`, fix: 'run on nodes with kernel >= 6.3' };
  }
  return { ...base, status: 'OK', detail: `${vText} supports dst, ${kText} (not tried: no test link)` };
}

function checkUnderlayRp(f: DoctorFacts): CheckResult {
  const base = { id: 'rp-filter-underlay', title: 'rp_filter on the underlay' };
  if ('error' in f.underlay) {
    return { ...base, status: 'WARN', detail: `no underlay: ${f.underlay.error}`, fix: 'pass --interface IF' };
  }
  const { all, underlay } = f.rpFilter;
  if (all === null || underlay === null) {
    return { ...base, status: 'WARN', detail: `cannot read rp_filter for ${f.underlay.name}`, fix: 'check that /proc/sys is mounted' };
  }
  const eff = effectiveRpFilter(all, underlay);
  // VXLAN between pod IPs arrives on the underlay from addresses routed back through it, so even
  // strict mode passes it; the value is reported because node defaults leak into the pod.
  return {
    ...base,
    status: 'OK',
    detail: `${f.underlay.name}: max(all=${all}, ${f.underlay.name}=${underlay}) = ${eff} (${rpName(eff)}); unicast VXLAN between pod IPs passes any mode`,
  };
}

function checkOverlayRp(f: DoctorFacts, opts: DoctorOptions): CheckResult {
  const dev = opts.device;
  const base = { id: 'rp-filter-overlay', title: `rp_filter on ${dev}` };
  const { all } = f.rpFilter;
  // A vx0 that does not exist yet will copy conf/default when the agent creates it.
  const devValue = f.device.exists ? f.rpFilter.device : f.rpFilter.default;
  const devLabel = f.device.exists ? dev : 'default';
  if (all === null || devValue === null) {
    return { ...base, status: 'WARN', detail: `cannot read rp_filter (all, ${devLabel})`, fix: 'check that /proc/sys is mounted' };
  }
  const eff = effectiveRpFilter(all, devValue);
  const calc = `max(all=${all}, ${devLabel}=${devValue}) = ${eff} (${rpName(eff)})`;
  const where = f.device.exists ? '' : ` for a new ${dev}`;
  if (eff !== 1) return { ...base, status: 'OK', detail: `${calc}${where}` };
  const why = `strict: with the pod IP on ${dev}, packets from peers' pod IPs arrive on ${dev} but route back via the underlay, so strict mode drops them all`;
  const addressing = 'status' in f.agent ? f.agent.status.addressing : undefined;
  if (addressing?.startsWith('subnet')) {
    return { ...base, status: 'OK', detail: `${calc}; the agent uses ${addressing} addressing, which works with strict mode` };
  }
  if (f.device.exists) {
    return { ...base, status: 'FAIL', detail: `${calc}: ${why}`, fix: FIX_RP };
  }
  if (f.procSys.writable) {
    return {
      ...base,
      status: 'WARN',
      detail: `${calc}${where}: ${why}; /proc/sys is writable, so the agent sets ${dev} to 2 (loose) itself`,
      fix: 'nothing needed for the agent; set net.ipv4.conf.all.rp_filter=2 on the node to avoid depending on it',
    };
  }
  return {
    ...base,
    status: 'WARN',
    detail: `${calc}${where}: ${why}; /proc/sys is read-only, so the agent cannot loosen it and exits 3 at start`,
    fix: FIX_RP,
  };
}

function checkMtu(f: DoctorFacts): CheckResult {
  const base = { id: 'mtu', title: 'MTU' };
  if ('error' in f.underlay) {
    return { ...base, status: 'FAIL', detail: `no underlay: ${f.underlay.error}`, fix: 'pass --interface IF (the pod network interface, usually eth0)' };
  }
  const u = f.underlay;
  if (!u.exists || u.mtu === null) {
    return {
      ...base,
      status: 'FAIL',
      detail: `underlay ${u.name} does not exist`,
      fix: 'pass --interface with an interface listed by "ip link" (usually eth0)',
    };
  }
  // An IPv6 pod IP makes the underlay IPv6: VXLAN over IPv6 adds 70, a UDP header over IPv6 48.
  const six = f.ownIp?.includes(':') === true;
  const overlay = u.mtu - vxlanOverhead(six ? '::' : '0.0.0.0');
  const udpHeaders = six ? 48 : 28;
  const calc = `underlay ${u.name} mtu ${u.mtu} -> overlay mtu ${overlay} (max UDP payload ${overlay - udpHeaders})`;
  if (overlay < MIN_OVERLAY_MTU) {
    return {
      ...base,
      status: 'WARN',
      detail: `${calc}: below ${MIN_OVERLAY_MTU}, larger datagrams fragment inside the overlay`,
      fix: `keep application datagrams under ${overlay - udpHeaders} bytes, or raise the pod network MTU`,
    };
  }
  if (f.device.exists && f.device.mtu !== null && f.device.mtu > overlay) {
    return {
      ...base,
      status: 'WARN',
      detail: `${calc}, but ${f.device.name} has mtu ${f.device.mtu}: encapsulated packets exceed the underlay`,
      fix: `restart the agent (it sets ${f.device.name} to ${overlay}) or ip link set ${f.device.name} mtu ${overlay}`,
    };
  }
  return { ...base, status: 'OK', detail: calc };
}

function checkProcSys(f: DoctorFacts): CheckResult {
  const base = { id: 'proc-sys', title: '/proc/sys write access' };
  if (f.procSys.writable) return { ...base, status: 'OK', detail: 'writable: the agent can set rp_filter on its device' };
  const how = f.procSys.readOnlyMount ? 'mounted read-only' : `cannot open for writing (${f.procSys.error ?? 'unknown'})`;
  const strict = f.rpFilter.all === 1 || (f.rpFilter.all !== null && f.rpFilter.default === 1);
  if (!strict) {
    return { ...base, status: 'OK', detail: `${how} (normal in an unprivileged container); not needed, rp_filter is not strict` };
  }
  return {
    ...base,
    status: 'WARN',
    detail: `${how} (normal in an unprivileged container), and rp_filter is strict: the agent cannot loosen it`,
    fix: FIX_RP,
  };
}

function checkDns(f: DoctorFacts): CheckResult {
  const base = { id: 'dns', title: 'DNS of the service' };
  if (f.dns === null) return { ...base, status: 'SKIP', detail: 'no --service given' };
  const { service, server } = f.dns;
  const fixSvc =
    `check the name (the FQDN of a headless Service: clusterIP: None, publishNotReadyAddresses: true, selecting the app's pods)` +
    `${server === 'system resolver' ? '' : ` and that ${server} answers`}`;
  if ('error' in f.dns) {
    return { ...base, status: 'FAIL', detail: `resolve ${service} via ${server}: ${f.dns.error}`, fix: fixSvc };
  }
  const all = f.dns.addresses;
  const own = f.ownIp !== null && all.includes(f.ownIp);
  const others = all.filter((a) => a !== f.ownIp);
  const detail = `${service}: ${all.length} ${f.ownIp?.includes(':') ? 'AAAA' : 'A'} record(s)${own ? ` incl. this pod ${f.ownIp}` : ''}, ${others.length} peer(s)${others.length ? `: ${others.join(', ')}` : ''}`;
  if (all.length === 0) return { ...base, status: 'FAIL', detail, fix: fixSvc };
  if (others.length === 0) {
    return { ...base, status: 'WARN', detail, fix: 'start more members, or check the Service selector matches every member pod' };
  }
  if (f.ownIp !== null && !own) {
    return {
      ...base,
      status: 'WARN',
      detail: `${detail}; this pod (${f.ownIp}) is not listed`,
      fix: 'set publishNotReadyAddresses: true on the Service and check its selector matches this pod',
    };
  }
  return { ...base, status: 'OK', detail };
}

function checkAgent(f: DoctorFacts): CheckResult {
  const base = { id: 'agent', title: 'local agent' };
  if ('error' in f.agent) {
    return {
      ...base,
      status: 'WARN',
      detail: `${f.agent.error.replace(/; is the agent running\?.*$/, '')}; peers probed over UDP instead`,
      fix: 'start the kmcast sidecar, or pass --url with its --http address',
    };
  }
  const s = f.agent.status;
  const alive = s.peers.filter((p) => p.state === 'alive').length;
  const detail = `${s.version} on ${s.podIp}: ${s.ready ? 'ready' : 'NOT ready'}, replication ${s.replication}, ${alive}/${s.peers.length} peers alive`;
  if (!s.ready) return { ...base, status: 'WARN', detail, fix: "read the agent's log (kubectl logs POD -c kmcast)" };
  return { ...base, status: 'OK', detail };
}

const PEER_STATE: Record<PeerState, { status: CheckStatus; detail: string; fix?: string }> = {
  alive: { status: 'OK', detail: 'alive (heartbeats arriving)' },
  pending: {
    status: 'WARN',
    detail: 'pending: listed but never heard from',
    fix: 'check the peer runs the agent with the same --vni, --control-port and key, and that NetworkPolicy allows UDP to the control and VXLAN ports',
  },
  left: { status: 'WARN', detail: 'left (sent LEAVE on shutdown)', fix: 'normal during a rollout; otherwise check the peer pod' },
  expired: {
    status: 'FAIL',
    detail: 'expired: heartbeats stopped',
    fix: "check the peer pod and its agent's log, and that NetworkPolicy allows UDP to the control port",
  },
};

function checkPeers(f: DoctorFacts, opts: DoctorOptions): CheckResult[] {
  const port = opts.controlPort;
  if ('status' in f.agent) {
    const peers = f.agent.status.peers;
    if (peers.length === 0) {
      return [{ id: 'peers', title: 'peers', status: 'WARN', detail: 'the agent has no peers', fix: 'check --service / --peers of the agent' }];
    }
    return peers.map((p) => {
      const v = PEER_STATE[p.state] ?? { status: 'WARN' as const, detail: `state ${p.state}` };
      return {
        id: `peer:${p.ip}`,
        title: `peer ${p.ip}`,
        status: v.status,
        detail: `${v.detail} (agent's view; last seen ${p.lastSeen ?? 'never'})`,
        ...(v.fix === undefined ? {} : { fix: v.fix }),
      };
    });
  }
  if (f.peerProbes.length === 0) {
    return [{ id: 'peers', title: 'peers', status: 'SKIP', detail: 'no peers to probe (no --peers, and DNS gave none)' }];
  }
  return f.peerProbes.map(({ ip, error }) => {
    const base = { id: `peer:${ip}`, title: `peer ${ip} udp/${port}` };
    if (error === null) {
      // UDP has no handshake: silence only means nobody said "port unreachable".
      return { ...base, status: 'OK' as const, detail: 'sent a datagram, no ICMP error (UDP cannot confirm a listener)' };
    }
    if (error === 'ECONNREFUSED') {
      return {
        ...base,
        status: 'FAIL' as const,
        detail: 'port unreachable: nothing listens on the control port',
        fix: `start the agent in that pod, with --control-port ${port} on both sides`,
      };
    }
    return {
      ...base,
      status: 'FAIL' as const,
      detail: `send failed: ${error}`,
      fix: 'check routing to the peer and NetworkPolicy for UDP to the control port',
    };
  });
}

/** Exit status of a doctor run: 1 when any check failed. */
export function doctorExitCode(results: readonly CheckResult[]): 0 | 1 {
  return results.some((r) => r.status === 'FAIL') ? 1 : 0;
}

/** Human report: one row per check, fixes below the table. */
export function formatDoctor(results: readonly CheckResult[]): string {
  const table = formatTable(
    ['STATUS', 'CHECK', 'DETAIL'],
    results.map((r) => [r.status, r.title, r.detail]),
  );
  const fixes = results.filter((r) => r.fix !== undefined && (r.status === 'WARN' || r.status === 'FAIL')).map((r) => `  ${r.status} ${r.title}: ${r.fix}`);
  const counts = (['OK', 'WARN', 'FAIL', 'SKIP'] as const).map((s) => `${results.filter((r) => r.status === s).length} ${s}`).join(', ');
  return `${table}\n${fixes.length ? `\nfixes:\n${fixes.join('\n')}\n` : ''}\n${counts}\n`;
}

// ---------------------------------------------------------------------------------------------
// The real system

export function systemDoctorDeps(runner: Runner): DoctorDeps {
  return {
    runner,
    readFile: async (path) => await readFile(path, 'utf8'),
    probeWrite: async (path) => {
      // O_WRONLY without O_TRUNC/O_CREAT: the open is the test, nothing is written.
      const fh = await open(path, fsConstants.O_WRONLY);
      await fh.close();
    },
    resolve4: async (name, server) => {
      const r = new Resolver({ timeout: 2000, tries: 2 });
      if (server !== undefined) r.setServers([server]);
      return await r.resolve4(name);
    },
    resolve6: async (name, server) => {
      const r = new Resolver({ timeout: 2000, tries: 2 });
      if (server !== undefined) r.setServers([server]);
      return await r.resolve6(name);
    },
    probeUdp,
    fetchStatus: async (url) => await fetchAgentStatus(url, 1500),
    uid: () => process.getuid?.() ?? null,
    kernelRelease: () => release(),
    randomSuffix: () => randomBytes(3).toString('hex'),
  };
}

/**
 * One empty datagram to ip:port on a connected UDP socket. A closed port answers with ICMP port
 * unreachable, which Linux reports on the connected socket as ECONNREFUSED; an empty datagram is
 * not a protocol message, so an agent that does listen just counts it as malformed.
 */
export async function probeUdp(ip: string, port: number, timeoutMs: number): Promise<string | null> {
  return await new Promise<string | null>((resolve) => {
    const sock = dgram.createSocket('udp4');
    let done = false;
    const finish = (result: string | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(result);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    sock.connect(port, ip, () => {
      sock.send(Buffer.alloc(0), (err) => {
        if (err) finish((err as NodeJS.ErrnoException).code ?? err.message);
      });
    });
  });
}
