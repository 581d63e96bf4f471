/**
 * Namespace side of the benchmarks: processes we start (all killed on cleanup), the native-bridge
 * topology of the physical-limit baseline, and one iperf2 multicast trial.
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { IpClient } from '../../src/kernel/ip.js';
import { ExecRunner, netnsSpawn } from '../../src/kernel/runner.js';
import { parseIperfClientSent, parseIperfServer } from './pure.js';
import type { TrialOutcome } from './pure.js';

export const runner = new ExecRunner();

export interface Proc {
  readonly child: ChildProcess;
  out: string;
  err: string;
  readonly exited: Promise<number | null>;
}

const live = new Set<Proc>();
let closing = false;

/**
 * Runs argv inside `netns` (ip netns exec execs, so the child's pid is the command's own);
 * `netns` undefined: in the bench's own namespace. `stdin: 'pipe'` to end it by closing stdin.
 */
export function spawnIn(netns: string | undefined, argv: readonly string[], env?: NodeJS.ProcessEnv, opts: { stdin?: 'pipe' | 'ignore' } = {}): Proc {
  // After stopAll (Ctrl-C) a scenario still unwinding must not start what nobody would stop.
  if (closing) throw new Error('bench is shutting down');
  const child = netnsSpawn(argv, netns, { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'], env: env ?? process.env });
  const p: Proc = {
    child,
    out: '',
    err: '',
    exited: new Promise((resolve) => {
      child.once('close', (code) => {
        live.delete(p);
        resolve(code);
      });
      child.once('error', () => {
        live.delete(p);
        resolve(null);
      });
    }),
  };
  child.stdout?.on('data', (b: Buffer) => (p.out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (p.err += b.toString()));
  live.add(p);
  return p;
}

/** Stops a process: `signal`, then SIGKILL after graceMs. */
export async function stop(p: Proc, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<number | null> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  try {
    return await p.exited;
  } finally {
    clearTimeout(t);
  }
}

export async function stopAll(): Promise<void> {
  closing = true;
  await Promise.all([...live].map((p) => stop(p, 'SIGKILL', 1000)));
}

export async function run(argv: readonly string[], netns?: string): Promise<string> {
  return (await runner.run(argv, { netns, timeoutMs: 60_000 })).stdout;
}

export async function netnsList(): Promise<string[]> {
  return await new IpClient(runner).netnsNames();
}

export async function deleteNetns(prefix: string): Promise<void> {
  const ip = new IpClient(runner);
  for (const ns of await netnsList()) {
    if (ns.startsWith(prefix)) await ip.deleteNetns(ns);
  }
}

export interface Member {
  readonly ns: string;
  readonly ip: string;
}

/**
 * The physical limit: `count` namespaces on one Linux bridge (in its own namespace), no overlay.
 * Addresses from 198.18.0.0/15 (RFC 2544 benchmarking), each member routes 224.0.0.0/4 to eth0.
 */
export async function nativeBridge(prefix: string, count: number, mtu = 1500): Promise<Member[]> {
  const br = `${prefix}-br`;
  const host = new IpClient(runner);
  await host.addNetns(br);
  const bridge = new IpClient(runner, br);
  await bridge.ipBatch([`link add kmcbr mtu ${mtu} type bridge`, 'link set kmcbr up']);
  const members: Member[] = [];
  for (let i = 1; i <= count; i++) {
    const ns = `${prefix}-m${i}`;
    const ip = `198.18.0.${i}`;
    await host.addNetns(ns);
    await bridge.ipBatch([`link add kmcv${i} mtu ${mtu} type veth peer name eth0 netns ${ns}`, `link set kmcv${i} master kmcbr up`]);
    await new IpClient(runner, ns).ipBatch([`addr add ${ip}/24 dev eth0`, 'link set eth0 up', 'link set lo up', 'route add 224.0.0.0/4 dev eth0']);
    members.push({ ns, ip });
  }
  return members;
}

/** Waits until `group` shows up in `ip maddr` of the namespace (a socket there joined it). */
export async function waitJoined(netns: string, group: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await new IpClient(runner, netns).allGroups()).includes(group)) return;
    await sleep(50);
  }
  throw new Error(`wait for a join of ${group} in ${netns}: not joined after ${timeoutMs} ms`);
}

export interface IperfTrialOptions {
  readonly sender: string;
  readonly receivers: readonly string[];
  readonly group: string;
  readonly port: number;
  /** 0 = as fast as iperf2 can send. */
  readonly pps: number;
  readonly size: number;
  readonly seconds: number;
  /** Runs after the receivers joined, before the sender starts (e.g. wait for MDB entries). */
  readonly beforeSend?: () => Promise<void>;
  /** Runs before the receivers start (e.g. wait until state the previous trial's joins left is gone). */
  readonly beforeStart?: () => Promise<void>;
  /** An IPv6 group: iperf2 with -V at both ends. */
  readonly ipv6?: boolean;
}

export interface IperfTrial extends TrialOutcome {
  readonly sent: number;
  readonly receivers: readonly { readonly received: number; readonly lossPercent: number }[];
}

/**
 * One iperf2 trial: receivers `iperf -s -u -B GROUP` (C, ~3x cheaper per datagram than a Node
 * receiver on this machine, so the receivers are not what limits the measurement), sender
 * `iperf -u -c GROUP -T 1 -b Npps -l SIZE -t S`; receivers get a 4 MiB receive buffer (-w 4M). Loss per receiver from its Lost/Total report,
 * cross-checked against the client's sent count (a receiver that saw nothing counts 100%).
 */
export const RECEIVE_BUFFER = '4M';

export async function iperfTrial(o: IperfTrialOptions): Promise<IperfTrial> {
  if (o.beforeStart) await o.beforeStart();
  // -w 4M: a receive buffer that rides out a few ms of CPU contention (capped by
  // net.core.rmem_max), so a busy shared machine shows up less as "loss" of the data path.
  const servers = o.receivers.map((ns) =>
    spawnIn(ns, ['iperf', '-s', '-u', ...(o.ipv6 ? ['-V'] : []), '-B', o.group, '-p', String(o.port), '-l', String(Math.max(o.size, 2048)), '-w', RECEIVE_BUFFER]),
  );
  try {
    await Promise.all(o.receivers.map((ns) => waitJoined(ns, o.group)));
    if (o.beforeSend) await o.beforeSend();
    const offered = o.pps === 0 ? 10_000_000 : Math.round(o.pps);
    const client = spawnIn(o.sender, ['iperf', '-u', ...(o.ipv6 ? ['-V'] : []), '-c', o.group, '-p', String(o.port), '-T', '1', '-b', `${offered}pps`, '-l', String(o.size), '-t', String(o.seconds)]);
    const code = await Promise.race([client.exited, sleep((o.seconds + 20) * 1000).then(() => 'timeout' as const)]);
    if (code !== 0) {
      await stop(client, 'SIGKILL');
      throw new Error(`iperf2 sender in ${o.sender} failed (${String(code)}): ${client.err.trim() || client.out.trim()}`);
    }
    const sent = parseIperfClientSent(client.out) ?? 0;
    await sleep(500); // the last datagrams and the FIN reach the receivers
    await Promise.all(servers.map((s) => stop(s, 'SIGINT')));
    // "Sent N" includes the closing FIN datagram.
    const dataSent = Math.max(1, sent - 1);
    const receivers = servers.map((s) => {
      const r = parseIperfServer(s.out);
      if (!r || r.total === 0) return { received: 0, lossPercent: 100 };
      const received = r.total - r.lost;
      return { received, lossPercent: Math.max(0, (r.lost / r.total) * 100, (1 - received / dataSent) * 100) };
    });
    return {
      offeredPps: o.pps,
      sentPps: sent / o.seconds,
      sent,
      lossPercent: Math.max(...receivers.map((r) => r.lossPercent)),
      receivers,
    };
  } finally {
    await Promise.all(servers.map((s) => stop(s, 'SIGKILL', 500)));
  }
}
