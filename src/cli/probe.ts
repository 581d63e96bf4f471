import type { Command } from 'commander';
import { hostname, networkInterfaces } from 'node:os';
import { ExitCode } from '../errors.js';
import { pino } from 'pino';
import type { Logger } from '../log.js';
import { DEFAULT_DURATION_S, DEFAULT_GROUP, DEFAULT_PORT, DEFAULT_RATE, DEFAULT_TTL, DEFAULT_WAIT_S, parseProbeOptions } from '../probe/options.js';
import type { RawProbeOptions } from '../probe/options.js';
import { runProbe } from '../probe/probe.js';
import { formatJson, formatTable } from '../probe/report.js';

export function registerProbe(program: Command): void {
  program
    .command('probe')
    .summary('omping-style probe: loss, duplicates, reordering, latency, join latency per sender')
    .description(
      'Send sequenced, timestamped datagrams to an IPv4 or IPv6 multicast group (or an IPv4 broadcast address) and report, per sender: received, lost, duplicates, reordered, latency and join latency. Run the same command in every member (like omping).',
    )
    .option('--group <ip[:port]>', 'multicast group (or IPv4 broadcast address) and port; IPv6 as [group]:port', `${DEFAULT_GROUP}:${DEFAULT_PORT}`)
    .option('--rate <pps>', `datagrams per second to send (0 = as fast as possible, needs --count)`, String(DEFAULT_RATE))
    .option('--size <bytes>', 'UDP payload size of each datagram (at least the header: 28 B + id length)')
    .option('--count <n>', 'datagrams to send (instead of --duration)')
    .option('--duration <s>', `seconds to send (default ${DEFAULT_DURATION_S}; count = rate x duration)`)
    .option('--wait <s>', 'seconds to keep receiving after our own sending ends', String(DEFAULT_WAIT_S))
    .option('--ttl <n>', 'multicast TTL of sent datagrams', String(DEFAULT_TTL))
    .option('--interface <ip|name>', 'local address (or interface name) to join and send on; default: the route decides (IPv6: an interface name or one of its addresses)')
    .option('--id <name>', 'sender id carried in every datagram (default: the host name)')
    .option('--peers <ip,ip>', 'senders to expect; one that sends nothing is reported as all lost')
    .option('--service <name>', 'headless Service whose A records (AAAA for an IPv6 group) are the senders to expect')
    .option('--max-loss <percent>', 'exit 1 when any sender lost more than this')
    .option('--receive-only', 'only receive (listen for the time a sender with the same options sends, plus --wait)')
    .option('--send-only', 'only send')
    .option('--json', 'print the report as JSON')
    .option('--log-level <level>', 'log level of diagnostics on stderr', 'warn')
    .addHelpText(
      'after',
      `
Every member runs the same command; each reports what it received from every other one. The run
ends after sending plus --wait, or as soon as every expected sender (--peers/--service) is complete.
An iperf2 client sending to the group is counted as a sender too (iperf -u -c GROUP -T 1).

Examples:
  kmcast probe --peers 10.0.1.5,10.0.2.7 --rate 100 --duration 5
  kmcast probe --service app-mcast.default.svc.cluster.local --json --max-loss 0
  kmcast probe --group 255.255.255.255:4321 --count 20          # broadcast
  kmcast probe --group [ff05::1:3]:4321 --interface eth0 --service app-mcast.default.svc.cluster.local   # IPv6
  kmcast probe --receive-only --count 1000 --rate 1000 --max-loss 0.1`,
    )
    .action(async (opts: RawProbeOptions & { logLevel: string }) => {
      const config = parseProbeOptions(opts, { hostname: hostname(), interfaces: networkInterfaces() });
      const level = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(opts.logLevel) ? opts.logLevel : 'warn';
      // Diagnostics go to stderr so --json output on stdout stays machine-readable.
      const logger: Logger = pino({ level, base: { component: 'probe' } }, pino.destination(2));
      const controller = new AbortController();
      const onSigint = (): void => controller.abort();
      process.once('SIGINT', onSigint);
      process.once('SIGTERM', onSigint);
      try {
        const report = await runProbe(config, { logger, signal: controller.signal });
        process.stdout.write(config.json ? formatJson(report) : formatTable(report));
        process.exitCode = report.ok ? ExitCode.ok : ExitCode.failure;
      } finally {
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigint);
      }
    });
}
