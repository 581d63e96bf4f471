import type { Command } from 'commander';
import { CapabilityError, ConfigError, ExitCode } from '../errors.js';
import { ExecRunner } from '../kernel/runner.js';
import { runDemo } from '../lab/demo.js';
import { runGatewayDemo } from '../lab/demo-gateway.js';
import { parseNodes, validateLabId } from '../lab/plan.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .summary('show multicast fixed on a simulated 3-node cluster (needs root; under a minute)')
    .description(
      'Builds a simulated cluster of network namespaces (a router that forwards unicast only, calico-style and ' +
        'bridge-style nodes, pods, a DNS server for the headless Service), shows that multicast and broadcast do ' +
        "not cross nodes, starts kmcast (an agent in every pod, or with --mode node one agent per node), shows that every pod now receives every other pod's " +
        'multicast, link-local multicast and broadcast exactly once, and tears everything down.',
    )
    .option('--nodes <styles|n>', 'node styles, e.g. calico,bridge,calico, or a count (alternating)', 'calico,bridge,calico')
    .option('--pods <n>', 'pods per node', '2')
    .option('--mtu <n>', 'underlay MTU', '1500')
    .option('--id <id>', 'lab id (namespace names start with kmc<id>-)', 'demo')
    .option('--keep', 'leave the lab and agents running at the end')
    .option('--ipv6', 'dual-stack pods, and IPv6 multicast (ff05::1:3, ff02::fb) beside IPv4 (sidecar, node and gateway modes)')
    .option('--mode <mode>', 'sidecar: a kmcast agent in every pod; node: one kmcast node agent per node, apps with no capability; gateway: node mode plus an outside LAN', 'sidecar')
    .addHelpText(
      'after',
      `
Modes:
  sidecar  every pod gets a kmcast agent with NET_ADMIN and a VXLAN device vx0 (kmcast inject).
  node     one kmcast node agent per node namespace (the kmcast-node DaemonSet); the pods hold no
           agent and no capability: the apps run as uid 65534, join on eth0 by index, and each pod
           runs kmcast wait (uid 65532, no capability) until its node agent programmed it
           (kmcast inject --mode node; docs/node-mode.md).
  gateway  node mode plus an outside LAN (a switch with IGMP snooping, two hosts that are not
           pods) on node 1, whose node agent is the gateway: a LAN feed reaches every pod, a pod's
           stream reaches the LAN hosts (kmcast gateway; docs/gateway.md).

Exit codes: 0 every cell of the final matrix is exactly right; 1 some cell is not; 3 not root.

Examples:
  sudo kmcast demo
  sudo kmcast demo --nodes 4 --pods 3
  sudo kmcast demo --mode node
  sudo kmcast demo --ipv6
  sudo kmcast demo --mode node --ipv6
  sudo kmcast demo --mode gateway
  sudo kmcast demo --mode gateway --ipv6
  sudo kmcast demo --keep && sudo kmcast lab exec --id demo n1p1 -- bridge mdb show dev vx0`,
    )
    .action(async (flags: { nodes: string; pods: string; mtu: string; id: string; keep?: boolean; mode: string; ipv6?: boolean }) => {
      if (flags.mode !== 'sidecar' && flags.mode !== 'node' && flags.mode !== 'gateway') throw new ConfigError(`--mode: invalid value ${JSON.stringify(flags.mode)} (sidecar, node or gateway)`);
      if (process.getuid?.() !== 0) throw new CapabilityError('kmcast demo needs root (it builds network namespaces): run it with sudo');
      const int = (flag: string, v: string, min: number, max: number): number => {
        if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new ConfigError(`${flag}: invalid value ${JSON.stringify(v)} (must be an integer between ${min} and ${max})`);
        return Number(v);
      };
      const options = {
        id: validateLabId(flags.id),
        nodes: parseNodes(flags.nodes),
        podsPerNode: int('--pods', flags.pods, 1, 20),
        mtu: int('--mtu', flags.mtu, 1280, 9000),
        keep: flags.keep ?? false,
        runner: new ExecRunner(),
        print: (line = '') => process.stdout.write(`${line}\n`),
      };
      const result =
        flags.mode === 'gateway' ? await runGatewayDemo({ ...options, ipv6: flags.ipv6 === true }) : await runDemo({ ...options, mode: flags.mode as 'sidecar' | 'node', ipv6: flags.ipv6 === true });
      process.stdout.write(`\n${result.ok ? 'Demo passed' : 'Demo FAILED'} in ${result.seconds.toFixed(1)} s.\n`);
      process.exitCode = result.ok ? ExitCode.ok : ExitCode.failure;
    });
}
