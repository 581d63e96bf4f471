/** `kmcast doctor`: check, from inside a pod, everything the agent needs; OK / WARN / FAIL + fix. */
import { isIPv4 } from 'node:net';
import type { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { ExecRunner } from '../kernel/runner.js';
import { doctorExitCode, evaluate, formatDoctor, gatherFacts, systemDoctorDeps } from '../sidecar/doctor.js';
import type { DoctorOptions } from '../sidecar/doctor.js';
import { DEFAULT_STATUS_URL } from '../sidecar/status-format.js';
import { evaluateNode, gatherNodeFacts, systemNodeDoctorDeps } from '../node/doctor.js';
import { DEFAULT_NODE_STATUS_URL } from '../node/status-format.js';

interface DoctorFlags {
  readonly interface?: string;
  readonly device: string;
  readonly service?: string;
  readonly dnsServer?: string;
  readonly peers?: string;
  readonly controlPort: string;
  readonly url: string;
  readonly json?: boolean;
  readonly node?: boolean;
}

/** Flags (and the agent's KMCAST_* env vars, so the same pod spec works) to DoctorOptions. */
export function doctorOptions(flags: DoctorFlags, env: NodeJS.ProcessEnv): DoctorOptions {
  const peersText = flags.peers ?? env.KMCAST_PEERS ?? '';
  const peers = peersText
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  for (const p of peers) {
    if (!isIPv4(p)) throw new ConfigError(`--peers: "${p}" is not an IPv4 address; give a comma-separated list like 10.244.1.11,10.244.2.12`);
  }
  const port = Number(flags.controlPort);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`--control-port ${flags.controlPort}: must be an integer between 1 and 65535`);
  }
  const dnsServer = flags.dnsServer ?? env.KMCAST_DNS_SERVER;
  if (dnsServer !== undefined && !/^\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?$/.test(dnsServer)) {
    throw new ConfigError(`--dns-server ${dnsServer}: expected IP or IP:PORT, e.g. 10.96.0.10 or 10.96.0.10:53`);
  }
  const podIp = env.KMCAST_POD_IP;
  return {
    interface: flags.interface ?? env.KMCAST_INTERFACE,
    device: flags.device,
    service: flags.service ?? env.KMCAST_SERVICE,
    dnsServer,
    peers,
    controlPort: port,
    statusUrl: flags.url,
    podIp: podIp !== undefined && isIPv4(podIp) ? podIp : undefined,
  };
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .summary('check a pod for what kmcast needs (capability, vxlan, MDB, rp_filter, MTU, DNS, peers)')
    .description('Check, inside a pod, what the agent needs: capability, vxlan, MDB support, rp_filter, MTU, DNS, peers.')
    .option('--interface <if>', 'underlay interface (default: the interface of the default route)')
    .option('--device <name>', 'the overlay device', 'vx0')
    .option('--service <fqdn>', 'headless Service FQDN to resolve (default: env KMCAST_SERVICE)')
    .option('--dns-server <ip[:port]>', 'resolver to ask instead of the system one')
    .option('--peers <ip,...>', 'static peers to probe, beside the service records')
    .option('--control-port <n>', "the peers' control port", '7470')
    .option('--url <url>', "the local agent's HTTP address; when it answers, its peer states are used", DEFAULT_STATUS_URL)
    .option('--json', 'print the checks as JSON')
    .option('--node', `check a node for node mode instead (CAP_NET_ADMIN, nftables netdev dup/fwd, /var/run/netns, the node agent; --url defaults to ${DEFAULT_NODE_STATUS_URL})`)
    .addHelpText(
      'after',
      `
Each check prints OK, WARN or FAIL (SKIP when it does not apply) with a detail and, for WARN and
FAIL, the fix. It creates and deletes a throwaway vxlan link (kmcdoc...) in the current network
namespace and sends one empty UDP datagram to each peer's control port; nothing else changes.

With --node it checks a node (run it there as root, or in the kmcast-node pod): CAP_NET_ADMIN,
that the kernel accepts the capture chain (nftables netdev ingress with dup and fwd; nft --check,
nothing is installed), that /var/run/netns is readable, and the node agent's /status.

Exit codes: 0 no check failed, 1 at least one FAIL, 2 bad flags.

Examples:
  kubectl exec app-0 -c kmcast -- kmcast doctor --service app-mcast.default.svc.cluster.local
  kmcast doctor --interface eth0 --peers 10.244.1.11,10.244.2.12 --json
  sudo kmcast lab exec n1p1 -- kmcast doctor --service kmcast-peers.default.svc.cluster.local
  kubectl exec -n kmcast-node ds/kmcast-node -- kmcast doctor --node`,
    )
    .action(async (flags: DoctorFlags) => {
      if (flags.node) {
        const nodeOpts = { statusUrl: flags.url === DEFAULT_STATUS_URL ? DEFAULT_NODE_STATUS_URL : flags.url };
        const results = evaluateNode(await gatherNodeFacts(nodeOpts, systemNodeDoctorDeps(new ExecRunner())), nodeOpts);
        process.stdout.write(flags.json ? `${JSON.stringify({ checks: results }, null, 2)}\n` : formatDoctor(results));
        process.exitCode = doctorExitCode(results);
        return;
      }
      const opts = doctorOptions(flags, process.env);
      const facts = await gatherFacts(opts, systemDoctorDeps(new ExecRunner()));
      const results = evaluate(facts, opts);
      process.stdout.write(flags.json ? `${JSON.stringify({ checks: results }, null, 2)}\n` : formatDoctor(results));
      process.exitCode = doctorExitCode(results);
    });
}
