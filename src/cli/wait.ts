/** `kmcast wait`: the node-mode init container; waits until the node agent programmed this pod. */
import type { Command } from 'commander';
import { Option } from 'commander';
import { ConfigError, ExitCode } from '../errors.js';
import { NODE_HTTP_PORT } from '../node/api.js';
import { describe, fetchPodStatus, waitConfig, WaitFlagError, waitUntilProgrammed } from '../node/wait.js';
import type { RawWaitFlags } from '../node/wait.js';

export function registerWait(program: Command): void {
  program
    .command('wait')
    .summary('init container of node mode: wait until the node agent programmed this pod')
    .description(
      "Polls the kmcast-node agent on this pod's node (GET /v1/pods/<podIP>) until it reports the pod programmed, " +
        'so the app starts with multicast working. Needs no privilege. Prints what it waits for when that changes and every 10 s.',
    )
    .addOption(new Option('--agent <url>', `the node agent's base URL (instead of --node-ip and --port), e.g. http://10.0.0.5:${NODE_HTTP_PORT}`))
    .addOption(new Option('--node-ip <ip>', "this pod's node IP (downward API status.hostIP)").env('KMCAST_NODE_IP'))
    .addOption(new Option('--port <n>', "the node agent's HTTP port").env('KMCAST_PORT').default(String(NODE_HTTP_PORT)))
    .addOption(new Option('--pod-ip <ip>', "this pod's IP (downward API status.podIP)").env('KMCAST_POD_IP'))
    .addOption(new Option('--timeout <duration>', 'give up (exit 1) after this long; 0 waits forever').env('KMCAST_WAIT_TIMEOUT').default('300s'))
    .addOption(new Option('--interval <duration>', 'time between polls').default('1s'))
    .addHelpText(
      'after',
      `
Exit codes: 0 the pod is programmed, 1 timed out (the last reason is printed), 2 bad flags.
An unreachable agent (not started yet, restarting) is waited for, not an error.

Examples:
  kmcast wait                                   # KMCAST_NODE_IP and KMCAST_POD_IP from the downward API
  kmcast wait --node-ip 10.0.0.5 --pod-ip 10.244.1.7 --timeout 10m
  kmcast wait --agent http://127.0.0.1:9471 --pod-ip 10.244.1.7 --timeout 0`,
    )
    .action(async (flags: RawWaitFlags, cmd: Command) => {
      let config;
      try {
        // An explicit --agent wins over the KMCAST_NODE_IP the injected container always has.
        const { nodeIp, ...rest } = flags;
        const fromEnv = cmd.getOptionValueSource('nodeIp') === 'env';
        config = waitConfig(flags.agent && fromEnv ? rest : { ...rest, ...(nodeIp !== undefined ? { nodeIp } : {}) });
      } catch (err) {
        if (err instanceof WaitFlagError) throw new ConfigError(err.message, { cause: err });
        throw err;
      }
      const say = (line: string): void => {
        process.stderr.write(`kmcast wait: ${line}\n`);
      };
      say(`asking ${config.agent} about pod ${config.podIp} every ${config.intervalMs} ms${config.timeoutMs > 0 ? `, for at most ${config.timeoutMs / 1000} s` : ', without a timeout'}`);
      const r = await waitUntilProgrammed(config, config, {
        poll: () => fetchPodStatus(config, config.requestTimeoutMs),
        now: () => Date.now(),
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        say,
      });
      if (!r.ok) {
        say(`gave up after ${(r.waitedMs / 1000).toFixed(0)} s; last: ${r.last ? describe(r.last, config) : 'no answer'}`);
        process.exitCode = ExitCode.failure;
      }
    });
}
