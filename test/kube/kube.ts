/**
 * kubectl helpers and the python programs shared by the cluster tests that run apps
 * (sidecar-webhook, churn, gateway): pods and their state, logs, exec, and the app that logs
 * every datagram it gets ("<kind> <source> <payload>").
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { KMCAST_MAIN, waitFor } from '../../src/lab/process.js';
import { kubeconfigOf, kubectlWith, runner } from './harness.js';
import type { KubeLab } from './harness.js';

export const DEPLOY = fileURLToPath(new URL('../../../deploy', import.meta.url));

/**
 * The app: a socket bound to the group and joined on eth0 by its interface index (ip_mreqn), and
 * one for unicast fences; each datagram logged as "<kind> <source> <payload>", in one write(2):
 * print() from the two threads interleaved its pieces ("mcastucast ...") under load.
 */
export function recvPy(group: string, port: number, uport: number): string {
  return `
import os, socket, struct, threading
idx = socket.if_nametoindex('eth0')
def recv(kind, s):
    while True:
        d, a = s.recvfrom(4096)
        os.write(1, ('%s %s %s\\n' % (kind, a[0], d.decode(errors='replace'))).encode())
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
m.bind(('${group}', ${port}))
m.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4si', socket.inet_aton('${group}'), socket.inet_aton('0.0.0.0'), idx))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('0.0.0.0', ${uport}))
threading.Thread(target=recv, args=('ucast', u), daemon=True).start()
print('ready', idx, flush=True)
recv('mcast', m)
`;
}

/**
 * argv: TAG COUNT [FENCE_IP...]. Sends COUNT datagrams "<tag>-<i>" to the group out of eth0
 * (IP_MULTICAST_IF by index, TTL 8: a router forwarding multicast would pass them), then
 * "<tag>-fence" by unicast to each IP given.
 */
export function sendPy(group: string, port: number, uport: number): string {
  return `
import socket, struct, sys, time
tag, count, fences = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack('4s4si', socket.inet_aton('0.0.0.0'), socket.inet_aton('0.0.0.0'), socket.if_nametoindex('eth0')))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
for i in range(count):
    s.sendto(('%s-%d' % (tag, i)).encode(), ('${group}', ${port})); time.sleep(0.02)
for ip in fences:
    s.sendto(('%s-fence' % tag).encode(), (ip, ${uport}))
`;
}

export interface Pod {
  readonly name: string;
  readonly ip: string;
  readonly node: string;
  readonly phase: string;
  readonly deleting: boolean;
  readonly ready: boolean;
  readonly raw: PodJson;
}

export interface ContainerStatus {
  readonly name: string;
  readonly ready?: boolean;
  readonly image?: string;
  readonly state?: { running?: { startedAt: string }; terminated?: { exitCode: number; reason?: string; startedAt?: string; finishedAt: string }; waiting?: { reason?: string } };
}

export interface PodJson {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: string; creationTimestamp: string; uid: string };
  spec: {
    nodeName?: string;
    initContainers?: Array<{ name: string; image?: string; restartPolicy?: string; securityContext?: { capabilities?: { add?: string[] } } }>;
    containers: Array<{ name: string; image?: string }>;
  };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }>;
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

/** kubectl and pod helpers against one test file's cluster. */
export class Kube {
  constructor(private readonly cluster: () => KubeLab | undefined) {}

  get config(): string {
    return kubeconfigOf(this.cluster());
  }

  async kubectl(args: readonly string[], input?: string, timeoutMs = 30_000): Promise<string> {
    return await kubectlWith(this.config, args, input, timeoutMs);
  }

  /** kubectl returning stdout and stderr (warnings), throwing on a non-zero exit. */
  async kubectlFull(args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string }> {
    const r = await runner.run(['kubectl', `--kubeconfig=${this.config}`, ...args], { allowFail: true, timeoutMs: 60_000, ...(input === undefined ? {} : { input }) });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ').slice(0, 300)}: ${r.stderr.trim()}`);
    return { stdout: r.stdout, stderr: r.stderr };
  }

  /** kubectl for failure messages: the output, or the error as text. */
  async show(args: readonly string[]): Promise<string> {
    return await this.kubectl(args).catch((e: unknown) => String(e));
  }

  async pods(ns: string, selector: string): Promise<Pod[]> {
    const items = (JSON.parse(await this.kubectl(['-n', ns, 'get', 'pods', '-l', selector, '-o', 'json'])) as { items: PodJson[] }).items;
    return items
      .map((p) => ({
        name: p.metadata.name,
        ip: p.status.podIP ?? '',
        node: p.spec.nodeName ?? '',
        phase: p.status.phase ?? '',
        deleting: p.metadata.deletionTimestamp !== undefined,
        ready: (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        raw: p,
      }))
      .sort((a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name));
  }

  async logs(ns: string, pod: string, container?: string): Promise<string[]> {
    return (await this.kubectl(['-n', ns, 'logs', pod, ...(container ? ['-c', container] : [])], undefined, 60_000)).split('\n').filter((l) => l !== '');
  }

  async exec(ns: string, pod: string, container: string, argv: readonly string[], timeoutMs = 60_000): Promise<string> {
    return await this.kubectl(['-n', ns, 'exec', pod, '-c', container, '--', ...argv], undefined, timeoutMs);
  }

  /** Running, with every container started and no pod of an older template left: the pods of `selector`. */
  async settledPods(ns: string, selector: string, count: number, want: (p: Pod) => boolean = () => true): Promise<Pod[] | undefined> {
    const ps = await this.pods(ns, selector);
    if (ps.length !== count || ps.some((p) => p.deleting || p.phase !== 'Running' || !want(p))) return undefined;
    if (ps.some((p) => (p.raw.status.containerStatuses ?? []).some((c) => !c.state?.running))) return undefined;
    return ps;
  }

  /** `count` pods of `selector` settled and each app container logged "ready". */
  async readyApps(ns: string, selector: string, count: number, timeoutMs: number, want: (p: Pod) => boolean = () => true, container = 'app'): Promise<Pod[]> {
    return await waitFor(
      `${count} pods ${selector} in ${ns} running and printing "ready"`,
      async () => {
        const ps = await this.settledPods(ns, selector, count, want);
        if (!ps) return undefined;
        for (const p of ps) if (!(await this.logs(ns, p.name, container)).some((l) => l.startsWith('ready '))) return undefined;
        return ps;
      },
      timeoutMs,
      { intervalMs: 1000, explain: async () => `${await this.show(['-n', ns, 'get', 'pods', '-o', 'wide'])}\n${await this.events(ns)}` },
    );
  }

  /** The last events of a namespace, for failure messages. */
  async events(ns: string, n = 12): Promise<string> {
    return (await this.show(['-n', ns, 'get', 'events', '--sort-by=.lastTimestamp'])).split('\n').slice(-n).join('\n');
  }

  /** Waits until a DaemonSet's pods all run its current template and are available. */
  async daemonSetRolledOut(ns: string, name: string, count: number, timeoutMs: number, explain?: () => Promise<string>): Promise<void> {
    await waitFor(
      `DaemonSet ${ns}/${name} rolled out and available on ${count} nodes`,
      async () => {
        const ds = JSON.parse(await this.kubectl(['-n', ns, 'get', 'daemonset', name, '-o', 'json'])) as {
          metadata: { generation: number };
          status: { observedGeneration?: number; desiredNumberScheduled?: number; updatedNumberScheduled?: number; numberAvailable?: number; numberReady?: number };
        };
        const s = ds.status;
        return s.observedGeneration === ds.metadata.generation && s.desiredNumberScheduled === count && s.updatedNumberScheduled === count && s.numberAvailable === count && s.numberReady === count;
      },
      timeoutMs,
      { intervalMs: 1000, explain: explain ?? (async () => await this.show(['-n', ns, 'get', 'pods', '-o', 'wide'])) },
    );
  }
}

/** `kmcast ARGS` of this checkout, as a user runs it; stdout and stderr (the report). */
export async function kmcast(args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await runner.run([process.execPath, KMCAST_MAIN, ...args], { allowFail: true, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`kmcast ${args.join(' ')}: exit ${String(r.code)}: ${r.stderr.trim()}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

export const list = (items: ReadonlyArray<Record<string, unknown>>): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });

/** Multicast lines of `round` in a receiver's log, as "source payload" (fences left out). */
export function roundLines(lines: readonly string[], round: string): string[] {
  return lines.filter((l) => l.startsWith('mcast ') && l.split(' ')[2]?.startsWith(`${round}-`) === true && !l.endsWith('-fence')).map((l) => l.slice('mcast '.length));
}

/**
 * Each receiver got each other sender's `count` datagrams of `round` exactly once (the round
 * fenced before this is called).
 */
export function assertExactlyOnce(logsOf: ReadonlyMap<string, readonly string[]>, members: readonly Pod[], round: string, count: number): void {
  for (const r of members) {
    const lines = roundLines(logsOf.get(r.name) ?? [], round);
    for (const s of members) {
      if (s.name === r.name) continue;
      const got = lines.filter((l) => l.startsWith(`${s.ip} ${round}-${s.name}-`)).sort();
      const want = Array.from({ length: count }, (_, i) => `${s.ip} ${round}-${s.name}-${i}`).sort();
      assert.deepEqual(got, want, `${r.name} (${r.node}) from ${s.name} (${s.node}): each datagram exactly once`);
    }
  }
}
