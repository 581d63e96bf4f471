/**
 * No orphaned helpers after a SIGKILL: the node agent's `ip monitor` children (one for the node,
 * one join listener for every member, or one per member namespace without CAP_NET_BROADCAST) and the sidecar agent's `ip -o monitor maddress` run under
 * `setpriv --pdeathsig SIGKILL` and die with it, even though a SIGKILLed agent runs no exit handler. Baseline first: the same `ip monitor` spawned
 * plainly by a Node.js parent that is then SIGKILLed survives it (so the check below can fail).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ExecRunner } from '../../src/kernel/runner.js';
import { labDown, labUp, setServiceMembers } from '../../src/lab/lab.js';
import { netnsFetch, startAgent, startNodeAgent, waitFor, settle } from '../../src/lab/process.js';
import type { AgentHandle, NodeAgentHandle } from '../../src/lab/process.js';
import type { Lab } from '../../src/lab/types.js';
import { NODE_HTTP_PORT } from '../../src/node/api.js';
import type { NodeStatus } from '../../src/node/status-types.js';
import { keepLab, needRoot, privilegedReason, testLabId } from './harness.js';

const runner = new ExecRunner();
const skip = privilegedReason() !== undefined && process.env.KMCAST_REQUIRE_NETNS !== '1';
const SERVICE = 'kmcast-peers.default.svc.cluster.local';

/** A live (not zombie) process's argv, or undefined when it is gone. */
function cmdline(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** Pids whose parent is `ppid`, read from /proc. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const isMonitor = (argv: string[] | undefined): boolean => argv !== undefined && argv.includes('ip') && argv.includes('monitor');

describe('helpers die with a SIGKILLed agent', { skip: skip ? privilegedReason() : false }, () => {
  let lab: Lab;
  let agent: NodeAgentHandle | undefined;
  let sidecar: AgentHandle | undefined;
  const leftovers: number[] = [];

  before(async () => {
    lab = await labUp({ id: testLabId('or'), nodes: ['calico', 'bridge'], podsPerNode: 2, mtu: 1500, service: SERVICE }, { runner });
    await setServiceMembers(
      lab,
      lab.pods.map((p) => p.ip),
    );
  });

  after(async () => {
    for (const pid of leftovers) if (cmdline(pid)) process.kill(pid, 'SIGKILL');
    await agent?.stop('SIGKILL');
    await sidecar?.stop('SIGKILL');
    if (lab && !keepLab()) await labDown(runner, { id: lab.spec.id });
  });

  test('baseline: a plain ip monitor outlives its SIGKILLed Node.js parent', async (t) => {
    if (!needRoot(t)) return;
    const script = "const c = require('node:child_process').spawn('ip', ['monitor', 'link'], { stdio: 'ignore' }); console.log(c.pid);";
    const parent = spawn(process.execPath, ['-e', `${script} setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'ignore'] });
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
    leftovers.push(pid);
    assert.ok(isMonitor(cmdline(pid)), `the monitor ${pid} runs`);
    parent.kill('SIGKILL');
    await new Promise((resolve) => parent.once('exit', resolve));
    await settle(1000);
    assert.ok(isMonitor(cmdline(pid)), 'without a death signal the monitor is orphaned, still running 1 s later');
  });

  // As deployed (CAP_NET_BROADCAST): the node monitor and one join listener for every member.
  // Without it: the node monitor and one join monitor per member namespace. Either way every one
  // runs under setpriv --pdeathsig and dies with the agent.
  for (const [how, wrap, expected] of [
    ['as deployed: one join listener', [], (): string[] => ['ip monitor link route', 'ip monitor maddress all-nsid']],
    [
      'without CAP_NET_BROADCAST: one join monitor per member',
      ['setpriv', '--bounding-set=-net_broadcast', '--inh-caps=-net_broadcast', '--'],
      (): string[] => ['ip monitor link route', ...lab.pods.filter((p) => p.node === 1).map(() => 'ip monitor maddress')],
    ],
  ] as const) {
    test(`node agent (${how}): its monitors are gone within 2 s of a SIGKILL`, async (t) => {
      if (!needRoot(t)) return;
      const node = lab.nodes[0]!;
      agent = await startNodeAgent(lab, node, ['--service', `${SERVICE}=100`, '--heartbeat-interval', '1000', '--resolve-interval', '1000'], { wrap });
      const pid = agent.child.pid!;
      const local = lab.pods.filter((p) => p.node === node.index);
      await waitFor(
        'node agent ready with its local members',
        async () => {
          const r = await netnsFetch(node.netns, '/status', NODE_HTTP_PORT).catch(() => undefined);
          if (r?.status !== 200) return false;
          const s = JSON.parse(r.body) as NodeStatus;
          return s.ready && s.domains[0]!.localMembers.length === local.length;
        },
        30_000,
        200,
      );
      const want = expected().sort();
      let monitors: number[] = [];
      await waitFor(
        `the monitors run (${want.length})`,
        () => {
          monitors = childrenOf(pid).filter((c) => isMonitor(cmdline(c)));
          return Promise.resolve(monitors.length === want.length);
        },
        10_000,
        100,
      );
      leftovers.push(...monitors);
      const argvs = monitors.map((c) => cmdline(c)!.join(' ')).sort();
      assert.deepEqual(argvs, want, 'setpriv (and nsenter) exec ip: the child is ip itself');
      process.kill(pid, 'SIGKILL');
      await waitFor('every monitor died with the agent', () => Promise.resolve(monitors.every((c) => cmdline(c) === undefined)), 2_000, 50);
      agent = undefined;
    });
  }

  test('sidecar agent: its ip monitor maddress is gone within 2 s of a SIGKILL', async (t) => {
    if (!needRoot(t)) return;
    // A pod of node 2: node 1's pods are still captured by the node ruleset the test above left.
    const pod = lab.pods.find((p) => p.node === 2)!;
    sidecar = await startAgent(lab, pod, ['--heartbeat-interval', '500', '--resolve-interval', '1000', '--http', 'off']);
    const pid = sidecar.child.pid!;
    let monitors: number[] = [];
    await waitFor(
      'the sidecar runs its join monitor',
      () => {
        monitors = childrenOf(pid).filter((c) => isMonitor(cmdline(c)));
        return Promise.resolve(monitors.length === 1);
      },
      30_000,
      100,
    );
    leftovers.push(...monitors);
    assert.deepEqual(cmdline(monitors[0]!), ['ip', '-o', 'monitor', 'maddress'], 'in its own namespace, setpriv exec-ed ip');
    process.kill(pid, 'SIGKILL');
    await waitFor('the monitor died with the agent', () => Promise.resolve(cmdline(monitors[0]!) === undefined), 2_000, 50);
    sidecar = undefined;
  });
});
