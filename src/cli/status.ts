/** `kmcast status`: read a local agent's `/status` and print it as a table or as JSON. */
import type { Command } from 'commander';
import { CapabilityError, ConfigError, ExitCode } from '../errors.js';
import { DEFAULT_STATUS_URL, fetchAgentStatus, formatStatus } from '../sidecar/status-format.js';
import { DEFAULT_NODE_STATUS_URL, fetchNodeStatus, formatNodeStatus } from '../node/status-format.js';
import { netnsSpawn } from '../kernel/runner.js';

interface StatusFlags {
  readonly url: string;
  readonly json?: boolean;
  readonly node?: boolean;
  readonly pod?: string;
  readonly labId?: string;
  readonly timeout: string;
}

/**
 * The network namespace of a lab pod: the lab names pods `kmc<id>-<pod>` (e.g. kmct1a2-n1p2); a
 * name that already starts with `kmc` is taken as the namespace itself.
 */
export function labPodNetns(pod: string, labId: string | undefined): string {
  if (pod.startsWith('kmc')) return pod;
  if (!labId) throw new ConfigError(`--pod ${pod}: also give --lab-id ID (see kmcast lab status), or the pod's namespace name`);
  return `kmc${labId}-${pod}`;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .summary("show a running agent's peers, groups, entries and drops")
    .description("Show a local agent's view: peers and their state, groups, FDB/MDB entry counts, drops.")
    .option('--url <url>', "the agent's HTTP address (its --http flag)", DEFAULT_STATUS_URL)
    .option('--json', 'print the /status document unchanged')
    .option('--node', `read a node agent (kmcast node; --url defaults to ${DEFAULT_NODE_STATUS_URL})`)
    .option('--pod <pod>', 'read the agent of a lab pod (runs inside its network namespace; needs root)')
    .option('--lab-id <id>', 'the lab of --pod')
    .option('--timeout <ms>', 'give up after this many milliseconds', '3000')
    .addHelpText(
      'after',
      `
The agent serves /status on its --http address (default :9470), inside the pod. Run this command
in the pod (kubectl exec POD -c kmcast -- kmcast status) or, in the lab, with --pod.

Exit codes: 0 shown, 1 the agent could not be reached, 2 bad flags.

Examples:
  kmcast status
  kmcast status --json | jq '.peers[] | select(.state != "alive")'
  kubectl exec app-0 -c kmcast -- kmcast status --url http://127.0.0.1:9470
  sudo kmcast status --pod n1p2 --lab-id t1a2
  kmcast status --node                       # on a node (or in the node agent's pod)`,
    )
    .action(async (flags: StatusFlags) => {
      const timeoutMs = Number(flags.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
        throw new ConfigError(`--timeout ${flags.timeout}: must be a positive number of milliseconds`);
      }
      if (flags.pod !== undefined) {
        process.exitCode = await runInPod(labPodNetns(flags.pod, flags.labId), flags);
        return;
      }
      if (flags.node) {
        const ns = await fetchNodeStatus(flags.url === DEFAULT_STATUS_URL ? DEFAULT_NODE_STATUS_URL : flags.url, timeoutMs);
        process.stdout.write(flags.json ? `${JSON.stringify(ns, null, 2)}\n` : formatNodeStatus(ns, new Date()));
        process.exitCode = ExitCode.ok;
        return;
      }
      const status = await fetchAgentStatus(flags.url, timeoutMs);
      process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, new Date()));
      process.exitCode = ExitCode.ok;
    });
}

/** Re-runs this same command inside the pod's namespace, where 127.0.0.1 is the pod's loopback. */
async function runInPod(netns: string, flags: StatusFlags): Promise<number> {
  if (process.getuid?.() !== 0) throw new CapabilityError('status --pod needs root (network namespaces): run with sudo');
  const script = process.argv[1];
  if (script === undefined) throw new ConfigError('--pod: cannot find the kmcast script to run inside the pod');
  const argv = [process.execPath, script, 'status', '--url', flags.url, '--timeout', flags.timeout];
  if (flags.json) argv.push('--json');
  if (flags.node) argv.push('--node');
  return await new Promise<number>((resolve, reject) => {
    const child = netnsSpawn(argv, netns, { stdio: 'inherit' });
    child.on('error', (err) => reject(new ConfigError(`run status in pod namespace ${netns}: ${err.message}`)));
    child.on('close', (code) => resolve(code ?? ExitCode.failure));
  });
}
