/**
 * Doctor checks for apps that name the pod interface (eth0): which capture path the agent runs,
 * and the sockets that cannot work in sidecar mode at all.
 *
 * A socket bound with SO_BINDTODEVICE eth0 (keepalived's VRRP receive socket, some DDS and
 * discovery stacks) only receives what arrives on eth0, and the overlay delivers on vx0; moving
 * received frames to eth0's receive path needs tc ingress redirect, which the sidecar does not
 * have. /proc/net/udp and /proc/net/raw do not carry a socket's bound device; sock_diag does, and
 * `ss` prints it as `ADDR%DEV:PORT`. That works unprivileged inside the pod (names of other users'
 * processes need more). Kernels without raw_diag list raw sockets from /proc/net/raw, without the
 * device: a raw VRRP socket (protocol 112) is then reported as probably bound, since keepalived
 * always binds it to its `interface`.
 */
import type { Runner } from '../kernel/runner.js';
import { errorMessage } from '../errors.js';
import type { CheckResult } from '../runtime/checks.js';
import type { AgentStatus } from './status-types.js';

export const VRRP_PROTOCOL = 112;

export interface SocketEntry {
  readonly proto: 'udp' | 'raw';
  /** Local address without the device. */
  readonly address: string;
  /** Port, or the IP protocol number for raw sockets. */
  readonly port: number;
  /** The SO_BINDTODEVICE device when sock_diag reports one. */
  readonly device?: string;
  /** Process names when `ss -p` could see them. */
  readonly processes: readonly string[];
}

export type SocketFacts = { readonly sockets: readonly SocketEntry[] } | { readonly error: string };

/** Parses `ss -H -a -n -p -u -w` (Netid column first). Pure. */
export function parseSs(stdout: string): SocketEntry[] {
  const out: SocketEntry[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const proto = f[0];
    if (proto !== 'udp' && proto !== 'raw') continue;
    const m = /^(.*?)(?:%([^:\]]+))?:(\d+|\*)$/.exec(f[4]!);
    if (!m) continue;
    const processes = [...line.matchAll(/\("([^"]+)",pid=/g)].map((x) => x[1]!);
    out.push({ proto, address: m[1]!, port: m[3] === '*' ? 0 : Number(m[3]), ...(m[2] ? { device: m[2] } : {}), processes });
  }
  return out;
}

export async function gatherSockets(runner: Runner): Promise<SocketFacts> {
  try {
    const r = await runner.run(['ss', '-H', '-a', '-n', '-p', '-u', '-w'], { allowFail: true, timeoutMs: 10_000 });
    if (r.code !== 0) return { error: r.stderr.trim() || `ss exited with ${r.code}` };
    return { sockets: parseSs(r.stdout) };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

function describe(s: SocketEntry): string {
  const where = `${s.address}${s.device ? `%${s.device}` : ''}`;
  const what = s.proto === 'raw' ? `raw ${where} protocol ${s.port}${s.port === VRRP_PROTOCOL ? ' (VRRP)' : ''}` : `udp ${where}:${s.port}`;
  return s.processes.length ? `${what} (${[...new Set(s.processes)].join(', ')})` : what;
}

const FIX_BOUND =
  'a socket bound to the pod interface never sees what the overlay delivers on vx0 (no tc ingress redirect in a pod): point the app at vx0 (keepalived: interface vx0), let it use the route table, or use node mode, which works outside the pod';

/** Sockets bound to the underlay, and raw VRRP sockets whose device the kernel does not report. */
export function checkBoundSockets(facts: SocketFacts | undefined, underlay: string | undefined): CheckResult {
  const base = { id: 'bound-sockets', title: `sockets bound to ${underlay ?? 'the pod interface'}` };
  if (facts === undefined || underlay === undefined) return { ...base, status: 'SKIP', detail: 'no underlay interface to check' };
  if ('error' in facts) {
    return { ...base, status: 'SKIP', detail: `cannot list sockets with ss: ${facts.error}`, fix: 'install iproute2 (ss) in the image to check this' };
  }
  const bound = facts.sockets.filter((s) => s.device === underlay);
  const vrrp = facts.sockets.filter((s) => s.proto === 'raw' && s.port === VRRP_PROTOCOL && s.device === undefined);
  if (bound.length) {
    return { ...base, status: 'WARN', detail: `bound with SO_BINDTODEVICE ${underlay}, will receive nothing from the overlay: ${bound.map(describe).join('; ')}`, fix: FIX_BOUND };
  }
  if (vrrp.length) {
    return {
      ...base,
      status: 'WARN',
      detail: `raw VRRP socket(s) whose device this kernel does not report (keepalived binds them to its interface): ${vrrp.map(describe).join('; ')}`,
      fix: FIX_BOUND,
    };
  }
  return { ...base, status: 'OK', detail: `no UDP or raw socket is bound to ${underlay} (${facts.sockets.length} listed)` };
}

/** The agent's capture path and the apps' groups per interface. */
export function checkCapture(status: AgentStatus | undefined): CheckResult {
  const base = { id: 'capture', title: 'eth0 capture' };
  if (!status) return { ...base, status: 'SKIP', detail: 'no agent status' };
  const c = status.capture;
  if (!c) return { ...base, status: 'SKIP', detail: 'the agent does not report a capture path (older version)' };
  const groups = Object.entries(status.groupsByInterface ?? {})
    .map(([dev, g]) => `${dev}: ${g.length ? g.join(', ') : 'none'}`)
    .join('; ');
  if (c.path === 'off') {
    return {
      ...base,
      status: 'WARN',
      detail: `off: multicast and broadcast sent out of ${c.underlay || 'eth0'} and groups joined there reach nobody (groups ${groups || 'unknown'})`,
      fix: 'run the agent with --capture on (the default)',
    };
  }
  if (!c.installed) {
    return {
      ...base,
      status: 'FAIL',
      detail: `the netdev egress chain on ${c.underlay} is not installed or did not read back`,
      fix: "see the agent's log; the chain needs nftables with the netdev egress hook (Linux >= 5.16)",
    };
  }
  const frames = c.forwarded6 !== undefined ? `IPv6 multicast too, never ICMPv6; ${c.forwarded} frames so far, ${c.forwarded6} of them IPv6` : `${c.forwarded} frames so far`;
  return { ...base, status: 'OK', detail: `netdev egress chain on ${c.underlay} moves multicast and broadcast into ${status.device} (${frames}); groups ${groups}` };
}
