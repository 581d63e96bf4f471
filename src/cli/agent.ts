import type { Command } from 'commander';
import { Agent } from '../sidecar/agent.js';
import { mergeOptions, validateConfig } from '../sidecar/config.js';
import type { RawOptions } from '../sidecar/config.js';
import { ExecMonitors } from '../kernel/monitor.js';
import { ExecRunner } from '../kernel/runner.js';
import { createLogger } from '../log.js';
import { runUntilSignal } from './lifecycle.js';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .summary('run the overlay agent in a pod (the kmcast sidecar)')
    .description(
      'Creates the VXLAN overlay device in this pod, finds the other members through the headless Service, ' +
        'keeps flood and per-group replication entries in sync with what the apps joined, and serves ' +
        '/metrics, /healthz, /readyz and /status. Every flag can also be set as KMCAST_<FLAG> (e.g. KMCAST_SERVICE).',
    )
    .option('--service <name>', 'headless Service whose A records (AAAA records for an IPv6 pod IP) are the member pods')
    .option('--peers <ip,ip>', "static peer list (instead of or beside --service), of the pod IP's family")
    .option('--dns-server <ip[:port]>', 'DNS resolver to ask, IP[:PORT] or [IPv6]:PORT (default: the system resolver)')
    .option('--interface <if>', 'underlay interface (default: the interface of the IPv4, else the IPv6, default route)')
    .option('--pod-ip <ip>', "this pod's IP, IPv4 or IPv6 (default: the underlay's first IPv4 address, else its first global IPv6 one; KMCAST_POD_IP from the downward API)")
    .option('--device <name>', 'overlay device name (default: vx0)')
    .option('--vni <n>', 'VXLAN network identifier, 1-16777215 (default: 4242)')
    .option('--vxlan-port <n>', 'overlay UDP port (default: 7471; not 4789/8472/6081, which CNIs drop from pods)')
    .option('--control-port <n>', 'control protocol UDP port (default: 7470)')
    .option('--http <[ip]:port|off>', 'metrics/health/status listener (default: :9470)')
    .option('--key-file <path>', 'shared secret(s), one per line: the first signs, all verify')
    .option('--addressing <mode>', 'auto | pod-ip (default: auto)')
    .option('--broadcast <cidr>', "also carry directed broadcast to this CIDR's broadcast address")
    .option('--unregistered <mode>', 'groups nobody joined, IPv4 and IPv6: drop | flood (default: drop); link-local groups (224.0.0.x, ff02::) always flood')
    .option('--replication <mode>', 'selective (per-group entries from what peers joined) | flood (every group to every peer) (default: selective)')
    .option('--heartbeat-interval <ms>', 'STATE heartbeat period (default: 1000)')
    .option('--peer-expiry <n>', 'heartbeats a peer may miss before it is dropped; one DNS or --peers still lists only becomes suspect (default: 5)')
    .option('--listed-peer-expiry <n>', 'heartbeats a peer still listed by DNS or --peers may miss before it is dropped (default: 3 x --peer-expiry)')
    .option('--resolve-interval <ms>', 'how often to re-resolve --service (default: 5000)')
    .option('--resync-interval <ms>', 'full re-read and repair of the data plane (default: 10000)')
    .option('--insecure-no-allowlist', 'do not install the nftables allow-list (VXLAN open to anyone who can reach the pod)')
    .option('--setup-only', 'create the overlay device and routes, then exit (init container on clusters without native sidecars)')
    .option('--capture <on|off>', 'apps that name eth0: move their multicast/broadcast sends (IPv6 multicast too, never ICMPv6) into the overlay and count their eth0 joins (default: on)')
    .option('--log-level <level>', 'trace | debug | info | warn | error (default: info)')
    .addHelpText(
      'after',
      `
Exit codes: 0 clean shutdown (SIGTERM: LEAVE sent, replication entries and allow-list emptied;
vx0 stays so the apps' group memberships survive a sidecar restart), 2 bad configuration (the
message names the flag), 3 missing capability or kernel feature (the message says how to fix it),
70 internal error (a bug; logged as one JSON line on stderr).

Dual-stack pods: vx0 carries IPv6 multicast too over the same (IPv4) overlay. It gets the pod's
IPv6 address and the route multicast ff00::/8 dev vx0 table local metric 1, so IPv6 multicast
sent or joined without an interface uses vx0 like 224.0.0.0/4; Neighbor Discovery and MLD stay
on eth0.

IPv6-only pods (an IPv6 pod IP): the overlay runs over IPv6. vx0 sends VXLAN from the pod's
IPv6 address (MTU: eth0's less 70), the members are the Service's AAAA records, the control
protocol uses udp6 and the allow-list is an ip6 table; --peers take IPv6 addresses and
--broadcast is refused. The kernel never fragments VXLAN over IPv6: fragments an app's kernel
cut at eth0's MTU (the app named eth0) are too long for the overlay until the kernel learns the
smaller path MTU from the first one refused; sending through vx0 (no interface named) fits.

Examples:
  kmcast agent --service app-mcast.default.svc.cluster.local
  KMCAST_SERVICE=app-mcast KMCAST_KEY_FILE=/etc/kmcast/key kmcast agent
  kmcast agent --peers 10.244.1.12,10.244.2.17 --unregistered flood
  kmcast agent --pod-ip fd00:10:244:1::11 --peers fd00:10:244:2::11,fd00:10:244:3::11
  kmcast agent --setup-only --service app-mcast`,
    )
    .action(async (flags: RawOptions) => {
      const config = validateConfig(mergeOptions(flags, process.env));
      const log = createLogger(config.logLevel, { component: 'agent' });
      const agent = new Agent(config, { runner: new ExecRunner(), monitors: new ExecMonitors(), log });
      await agent.start();
      if (config.setupOnly) return;
      await runUntilSignal(agent, log);
    });
}
