import type { Command } from 'commander';
import { ExecRunner } from '../kernel/runner.js';
import { ExecMonitors } from '../kernel/monitor.js';
import { createLogger } from '../log.js';
import { runUntilSignal } from './lifecycle.js';
import { NodeAgent } from '../node/agent.js';
import { NODE_CONTROL_PORT, NODE_HTTP_PORT, NODE_VXLAN_PORT } from '../node/api.js';
import { mergeNodeOptions, validateNodeConfig } from '../node/config.js';
import type { RawNodeOptions } from '../node/config.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function nodeOptions(cmd: Command): Command {
  return cmd
    .option('--service <name[=vni]>', 'a domain: headless Service whose A records are the member pods; repeatable, optional VNI', collect, [])
    .option('--peers <ip,ip>', "the other nodes' IPs, of the node IP's family (static; beside or instead of --peers-service)")
    .option('--peers-service <name>', 'headless Service of the node agents themselves (their node IPs: A records, or AAAA on an IPv6 underlay)')
    .option('--dns-server <ip[:port]>', 'DNS resolver to ask, IP[:PORT] or [IPv6]:PORT (default: the system resolver)')
    .option('--interface <if>', 'uplink (default: the interface of the IPv4 default route, else of the IPv6 one)')
    .option('--node-ip <ip>', "this node's IP (default: the uplink's first IPv4 address, else its first global IPv6 one); an IPv6 node IP makes the underlay IPv6")
    .option('--key-file <path>', 'shared secret(s), one per line: the first signs, all verify')
    .option('--insecure-no-key', 'run without --key-file: control messages unauthenticated (a pod masqueraded to a node IP can forge them); tests and trusted networks only')
    .option(
      '--http <[ip]:port|off>',
      `pod API for kmcast wait (/v1/pods/<ip>, /healthz, /readyz); /status and /metrics only to the node's loopback unless --status-http is set (default: 0.0.0.0:${NODE_HTTP_PORT})`,
    )
    .option('--status-http <[ip]:port|off>', 'operator listener: /status and /metrics (and /healthz, /readyz) to whoever reaches it; --http then serves no /status or /metrics (default: off)')
    .option('--vxlan-port <n>', `VXLAN UDP port between nodes (default: ${NODE_VXLAN_PORT})`)
    .option('--control-port <n>', `control protocol UDP port (default: ${NODE_CONTROL_PORT})`)
    .option('--unregistered <mode>', 'groups no member node joined: drop | flood (default: drop)')
    .option('--heartbeat-interval <ms>', 'STATE heartbeat period (default: 1000)')
    .option('--peer-expiry <n>', 'heartbeats a peer node may miss before it is dropped; one --peers-service or --peers still lists only becomes suspect (default: 5)')
    .option('--listed-peer-expiry <n>', 'heartbeats a peer node still listed by --peers-service or --peers may miss before it is dropped (default: 3 x --peer-expiry)')
    .option('--resolve-interval <ms>', 'how often to re-resolve the domains and --peers-service (default: 2000)')
    .option('--resync-interval <ms>', 'full re-read and repair of the data plane (default: 10000)')
    .option('--joins-interval <ms>', "re-read of every member's joins besides their maddress events (default: 30000)")
    .option('--log-level <level>', 'trace | debug | info | warn | error (default: info)');
}

function gatewayOptions(cmd: Command): Command {
  return cmd
    .option(
      '--gateway-interface <if>',
      "make this node the domain's gateway to the network on <if> (the LAN or uplink facing outside; an IPv4 address for IPv4 groups, a global IPv6 one for IPv6 groups: on an IPv6-only node, IPv6 groups only)",
    )
    .option(
      '--gateway-group <group[/len]=dir>',
      'what crosses the gateway, dir = in | out | both (e.g. 239.10.0.0/16=in, 224.0.0.251=both, ff05::1:3=both, ff02::fb=in); repeatable; nothing else crosses',
      collect,
      [],
    )
    .option('--gateway-service <name>', 'the --service domain the gateway serves (default: the only one)')
    .option('--gateway-snat <on|off>', "outbound datagrams leave with the interface's address and MAC as source (default: on)")
    .option('--gateway-min-ttl <n>', 'datagrams with a lower IP TTL do not cross, either way (default: 1, every TTL)')
    .option('--gateway-rate <pps>', 'datagrams per second per group and direction; excess is dropped and counted; 0 = no limit (default: 10000)')
    .option('--gateway-rate-total <pps>', 'datagrams per second per direction, all groups together (a storm over a range); excess is dropped and counted; 0 = no limit (default: 10 x --gateway-rate)')
    .option(
      '--gateway-max-joins <n>',
      'most inbound groups joined on the interface at once; when members want more, configured single groups and the groups most members joined go first, joined groups are kept (default: 1024)',
    );
}

const GATEWAY_HELP = `
Gateway (--gateway-interface): the node also connects one domain to the network on that interface.
Inbound groups (in, both) that member pods joined are joined on the interface (IGMP reports go out)
and their datagrams are handed into the domain like a member's, outside source kept, exactly once
to every member. Outbound groups (out, both) sent by member pods leave on the interface once. Only
UDP to listed groups crosses; datagrams that came in never go back out, and a datagram from a pod
or from a gateway's own address heard back on the interface is dropped. Several gateways of one
domain elect one (the lowest node IP); the others stand by. On an IPv6 underlay (an IPv6 node IP)
the gateway carries IPv6 groups; a LAN datagram whose frames do not fit the underlay MTU - 70 cannot
cross (VXLAN over IPv6 is never fragmented): it is dropped and counted. See docs/gateway.md.`;

async function runNodeAgent(flags: RawNodeOptions, opts: { gatewayRequired?: boolean } = {}): Promise<void> {
  const config = validateNodeConfig(mergeNodeOptions(flags, process.env), opts);
  const log = createLogger(config.logLevel, { component: config.gateway ? 'gateway' : 'node' });
  // nsenter, not `ip -n`: no mount(2), so the DaemonSet runs under the runtime's AppArmor profile.
  const agent = new NodeAgent(config, { runner: new ExecRunner({ netnsEntry: 'nsenter' }), monitors: new ExecMonitors({ netnsEntry: 'nsenter' }), log });
  await agent.start();
  await runUntilSignal(agent, log);
}

export function registerNode(program: Command): void {
  const node = program
    .command('node')
    .summary('run the node agent (node mode: member pods need no capability and no sidecar)')
    .description(
      "Runs in the node's network namespace (a DaemonSet with hostNetwork). For every domain (--service) it keeps a " +
        "VXLAN device kmcvx<vni>, takes the member pods' multicast and limited broadcast off their host veths with " +
        'nftables, copies it to the other local members and once per member node over VXLAN, and delivers what ' +
        "arrives out of the members' host veths, so apps see it on their own eth0. Serves /metrics, /healthz, " +
        `/readyz, /status and /v1/pods/<podIP> (read by \`kmcast wait\`). Every flag can also be set as KMCAST_<FLAG>.`,
    );
  gatewayOptions(nodeOptions(node))
    .addHelpText(
      'after',
      `
Exit codes: 0 clean shutdown (SIGTERM: LEAVE sent for every domain; devices, entries and the
nftables table stay so the member pods on this node keep talking and the next agent adopts them),
2 bad configuration (the message names the flag), 3 missing capability or tool (the message says
how to fix it).

Examples:
  kmcast node --service app-mcast.default.svc.cluster.local --peers-service kmcast-node.kmcast-node.svc.cluster.local
  kmcast node --service app-a=100 --service app-b=200 --peers 172.31.1.2,172.31.2.2 --key-file /etc/kmcast/key
  KMCAST_SERVICE=app-a,app-b KMCAST_PEERS_SERVICE=kmcast-node.kmcast-node.svc.cluster.local kmcast node

HTTP: --http (all addresses by default) is what member pods reach; it answers /v1/pods/<podIP>,
/healthz and /readyz to anyone, /status and /metrics only to clients on the node's loopback. Give
--status-http ADDR:PORT to serve /status and /metrics there (and nowhere else), e.g. for Prometheus.

Finding the other nodes: --peers-service (deploy/node's headless Service kmcast-node in namespace
kmcast-node) and/or --peers; control messages on UDP --control-port (${NODE_CONTROL_PORT}), signed
with --key-file (required: without one, the agent refuses to start unless --insecure-no-key); names resolved by --dns-server or the system resolver. A member pod's kmcast wait
returns once the other nodes are heard, or after one peer expiry (then degraded). docs/node-mode.md.

IPv6-only clusters: the node IP's family is the underlay's (VXLAN over IPv6, 70 bytes of overhead,
never fragmented: a member pod with a larger MTU than the uplink's less 70 gets that as its IPv6
multicast route's MTU, so its kernel fragments to fit), peers are IPv6, and a domain's members
are its Service's AAAA records when it has no A record.
${GATEWAY_HELP}`,
    )
    .action(async (flags: RawNodeOptions) => {
      await runNodeAgent(flags);
    });
  const gateway = program
    .command('gateway')
    .summary("run the node agent as a gateway between a domain's pods and the network outside the cluster")
    .description(
      '`kmcast node` with the gateway flags required: on the chosen node, multicast of the listed groups crosses ' +
        'between the member pods of one domain (on every node) and the network on --gateway-interface, inbound ' +
        '(outside to pods), outbound (pods to outside) or both. Takes every `kmcast node` flag; each flag can also be ' +
        'set as KMCAST_<FLAG>.',
    );
  gatewayOptions(nodeOptions(gateway))
    .addHelpText(
      'after',
      `${GATEWAY_HELP}

Exit codes: 0 clean shutdown (SIGTERM: the gateway leaves its groups and removes its nftables table
so a standby gateway takes over at once; the node's own data plane stays), 2 bad configuration
(the message names the flag, e.g. a --gateway-group that is not GROUP[/LEN]=in|out|both, or a
--gateway-interface without an IPv4 address), 3 missing capability or tool.

Examples:
  # an external feed on eth1 to the pods of one app
  kmcast gateway --service feed.md.svc.cluster.local --peers-service kmcast-node.kmcast-node.svc.cluster.local \\
    --gateway-interface eth1 --gateway-group 239.10.0.0/16=in
  # LAN discovery both ways: mDNS and SSDP
  kmcast gateway --service hass.home.svc.cluster.local --peers-service kmcast-node.kmcast-node.svc.cluster.local \\
    --gateway-interface eth0 --gateway-group 224.0.0.251=both,239.255.255.250=both`,
    )
    .action(async (flags: RawNodeOptions) => {
      await runNodeAgent(flags, { gatewayRequired: true });
    });
}
