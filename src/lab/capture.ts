/**
 * tcpdump in a lab namespace: what crossed an interface, as one line per packet (`-n -l`), e.g.
 * the IGMP reports a gateway sends on its LAN interface. Spawned through the lab's process
 * helpers, so labDown kills a capture a test left behind.
 */
import type { ChildProcess } from 'node:child_process';
import { KmcastError } from '../errors.js';
import { findTool, spawnInNetns, waitExit, waitFor } from './process.js';

export interface Capture {
  readonly netns: string;
  readonly ifname: string;
  /** The packet lines so far. */
  lines(): string[];
  /** Stops tcpdump (SIGINT) and returns every packet line. */
  stop(): Promise<string[]>;
}

/** tcpdump's own messages ('listening on', 'N packets captured', ...), not packets. */
const NOT_PACKET = /^(tcpdump:|listening on |\d+ packets? )|^$/;

/** Packet lines of tcpdump output. Pure; exported for tests. */
export function packetLines(out: string): string[] {
  return out.split('\n').filter((l) => !NOT_PACKET.test(l.trim()));
}

/** Starts `tcpdump -i IFNAME -n -l FILTER` in `netns`; resolves once it listens. */
export async function startCapture(netns: string, ifname: string, filter: readonly string[] = []): Promise<Capture> {
  const argv = [findTool('tcpdump', 'tcpdump (e.g. apt-get install tcpdump)'), '-i', ifname, '-n', '-l', '-U', ...filter];
  const child: ChildProcess = spawnInNetns(netns, argv);
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  await waitFor(
    `tcpdump on ${ifname} in ${netns} to listen`,
    async () => {
      if (child.exitCode !== null) throw new KmcastError(`tcpdump on ${ifname} in ${netns} exited: ${err.trim()}`);
      return err.includes('listening on');
    },
    10_000,
    20,
  ).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  return {
    netns,
    ifname,
    lines: () => packetLines(out),
    async stop(): Promise<string[]> {
      child.kill('SIGINT');
      await waitExit(child, 3000);
      return packetLines(out);
    },
  };
}
