/**
 * iperf2 as a real multicast peer in any lab namespace: a UDP client that sends a group at a set
 * rate (`iperf -c GROUP -u -b Npps`) and a server that joins it (`iperf -s -u -B GROUP`) and
 * reports what it lost. Both run through `ip netns exec` (src/lab/process.ts).
 */
import { KmcastError } from '../errors.js';
import { runInNetns, spawnInNetns, waitExit } from './process.js';

export interface IperfSent {
  /** Datagrams the client says it sent (its final FIN datagram included). */
  readonly sent: number;
  readonly output: string;
}

/** iperf2 client's closing line: "[  1] Sent 196069 datagrams"; undefined when absent. Pure. */
export function parseIperfSent(out: string): number | undefined {
  const m = /Sent (\d+) datagrams/.exec(out);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

export interface IperfLoss {
  readonly lost: number;
  readonly total: number;
}

/**
 * iperf2 UDP server report line "... 0.000 ms 26711/196068 (14%) ...": Lost/Total from the
 * datagram ids (a negative lost, from reordering, counts as 0). The last such line is the whole
 * test's report; undefined when there is none. Pure.
 */
export function parseIperfLoss(out: string): IperfLoss | undefined {
  const all = [...out.matchAll(/\s(-?\d+)\/\s*(\d+)\s+\((?:-?[\d.]+|nan|-?inf)%\)/g)];
  const last = all[all.length - 1];
  if (!last) return undefined;
  return { lost: Math.max(0, Number(last[1])), total: Number(last[2]) };
}

/** Sends `pps` datagrams per second of `size` bytes to group:port for `seconds`, with IP TTL `ttl`. */
export async function iperfSend(netns: string, o: { group: string; port: number; pps: number; seconds: number; size?: number; ttl?: number }): Promise<IperfSent> {
  const argv = ['iperf', '-c', o.group, '-u', '-p', String(o.port), '-T', String(o.ttl ?? 8), '-b', `${o.pps}pps`, '-l', String(o.size ?? 100), '-t', String(o.seconds)];
  const r = await runInNetns(netns, argv, (o.seconds + 15) * 1000);
  const sent = parseIperfSent(r.stdout);
  if (sent === undefined) throw new KmcastError(`iperf client in ${netns} reported no datagrams sent: ${(r.stderr || r.stdout).trim().slice(0, 400)}`);
  return { sent, output: r.stdout };
}

export interface IperfServer {
  readonly netns: string;
  /** Stops the server and returns its last loss report (undefined when it received nothing). */
  stop(): Promise<IperfLoss | undefined>;
}

/** An iperf2 UDP server joined to `group` (on the interface of the route to it). */
export async function startIperfServer(netns: string, o: { group: string; port: number }): Promise<IperfServer> {
  const child = spawnInNetns(netns, ['iperf', '-s', '-u', '-B', o.group, '-p', String(o.port), '-e']);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const deadline = Date.now() + 10_000;
  while (!out.includes('Joining multicast group')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new KmcastError(`start iperf server in ${netns}: ${out.trim() || 'no output'}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    netns,
    async stop() {
      child.kill('SIGTERM');
      await waitExit(child, 3000);
      return parseIperfLoss(out);
    },
  };
}
