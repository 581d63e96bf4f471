/** `kmcast lab up|down|status|exec|matrix`: the simulated cluster of network namespaces. */
import { constants } from 'node:os';
import type { Command } from 'commander';
import { CapabilityError, ConfigError, ExitCode, NotFoundError } from '../errors.js';
import { ExecRunner, netnsSpawn } from '../kernel/runner.js';
import { findExecTarget, labDown, labHealth, labUp, listLabs, loadLab } from '../lab/lab.js';
import { DEFAULT_LAN_HOSTS, checkLanHosts, parseLanNodes } from '../lab/lan-plan.js';
import { buildSpec, DEFAULT_LAB_ID, DEFAULT_SERVICE, hostPort, parseNodes, validateLabId } from '../lab/plan.js';
import { startAgentProcess } from '../lab/process.js';
import { formatMatrix, trafficMatrix } from '../lab/traffic.js';
import type { Lab, LabLan } from '../lab/types.js';
import { ensureKubeBinaries } from '../lab/kube/build.js';
import { ensureImages } from '../lab/kube/images.js';
import { ensureKmcastImage } from '../lab/kube/kmcast-image.js';
import { CACHE_ENV, COREDNS_VERSION, DEFAULT_CACHE_DIR, ETCD_VERSION, KUBE_VERSION } from '../lab/kube/versions.js';

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new CapabilityError('kmcast lab needs root (network namespaces): run with sudo');
}

function parseIntFlag(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new ConfigError(`invalid ${flag} ${JSON.stringify(value)}: must be a whole number`);
  return Number(value);
}

/** The lab named by --id, or the only one that exists. */
async function chooseLab(id: string | undefined): Promise<Lab> {
  if (id !== undefined) {
    const lab = await loadLab(validateLabId(id));
    if (!lab) throw new NotFoundError(`find lab ${id}: it does not exist; see \`sudo kmcast lab status\` or start it with \`sudo kmcast lab up --id ${id}\``);
    return lab;
  }
  const ids = await listLabs();
  const only = ids[0];
  if (only === undefined) throw new NotFoundError('find lab: none is running; start one with `sudo kmcast lab up`');
  if (ids.length > 1) throw new ConfigError(`find lab: ${ids.length} labs exist (${ids.join(', ')}); choose one with --id`);
  const lab = await loadLab(only);
  if (!lab) throw new NotFoundError(`find lab ${only}: its state file vanished; run \`sudo kmcast lab down --id ${only}\``);
  return lab;
}

function podTable(lab: Lab, agents: Record<string, number> = {}): string {
  const v6 = lab.spec.ipv6 === true;
  const rows = [['pod', 'node', 'style', 'ip', ...(v6 ? ['ip6'] : []), 'netns', ...(Object.keys(agents).length ? ['agent'] : [])]];
  for (const p of lab.pods) {
    const row = [p.name, `n${p.node}`, p.style, p.ip, ...(v6 ? [p.ip6 ?? '-'] : []), p.netns];
    if (Object.keys(agents).length) row.push(agents[p.name] === undefined ? '-' : `pid ${agents[p.name]}`);
    rows.push(row);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function lanLines(lan: LabLan | undefined): string {
  if (!lan) return '';
  // An IPv6-only LAN's primary address is its IPv6 one: each is printed once.
  const also = (ip: string, ip6: string | undefined): string => (ip6 && ip6 !== ip ? ` ${ip6}` : '');
  const snooping = lan.cidr6 === undefined ? 'IGMP' : lan.cidr6 === lan.cidr ? 'MLD' : 'IGMP and MLD';
  return (
    `LAN ${lan.cidr}${also(lan.cidr, lan.cidr6)} on switch ${lan.netns} (bridge ${lan.bridge} ${lan.switchIp}, ${snooping} snooping and querier; not routed to the underlay)\n` +
    `  hosts: ${lan.hosts.map((h) => `${h.name} ${h.ip}${also(h.ip, h.ip6)} (${h.netns} ${h.ifname})`).join('; ')}\n` +
    `  nodes: ${lan.nodes.map((n) => `n${n.node} ${n.ip}${also(n.ip, n.ip6)} (${n.netns} ${n.ifname})`).join('; ') || '(none)'}\n`
  );
}

interface UpFlags {
  readonly id: string;
  readonly nodes: string;
  readonly pods: string;
  readonly mtu: string;
  readonly service: string;
  readonly agents?: boolean;
  readonly lan?: string;
  readonly lanHosts: string;
  readonly kubernetes?: boolean;
  readonly ipv6?: boolean;
  readonly ipv6Only?: boolean;
  readonly podMtu?: string;
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .summary('the simulated cluster of network namespaces: up, down, status, exec, matrix (needs root)')
    .description('A simulated Kubernetes cluster in network namespaces: a router, calico- and bridge-style nodes, pods, a DNS server (needs root).')
    .addHelpText(
      'after',
      `
The router forwards unicast between nodes and never multicast, like a cloud VPC, so without kmcast
multicast and broadcast do not cross nodes. Every name starts with kmc; \`lab down\` removes it all.

Examples:
  sudo kmcast lab up --nodes calico,bridge,calico --pods 2
  sudo kmcast lab matrix
  sudo kmcast lab exec n1p1 -- ip addr
  sudo kmcast lab down`,
    );

  lab
    .command('up')
    .description('Build a lab and print its pods with their IPs.')
    .option('--id <id>', 'lab id: namespaces are kmc<id>-r, kmc<id>-n1, kmc<id>-n1p1, ...', DEFAULT_LAB_ID)
    .option('--nodes <list>', 'node styles (calico,bridge,...) or a count (styles alternate)', 'calico,bridge,calico')
    .option('--pods <n>', 'pods per node', '2')
    .option('--mtu <n>', 'underlay MTU of every link', '1500')
    .option('--pod-mtu <n>', "the pods' MTU (eth0 and host veth) on every node instead of the node's, e.g. 1430 for VXLAN over an IPv6 underlay of 1500")
    .option('--service <fqdn>', 'headless Service name the lab DNS answers with the pod IPs', DEFAULT_SERVICE)
    .option('--ipv6', 'dual stack: every pod also gets an IPv6 address (fd00:10:244:<node>::<10+k>), routed between nodes; the DNS answers AAAA too')
    .option('--ipv6-only', 'IPv6 only: nodes, router and pods have IPv6 addresses only (the --ipv6 plan without IPv4); the DNS listens on [fd00:10:96::10]:53 and answers AAAA only')
    .option('--agents', 'start `kmcast agent` in every pod and leave them running (logs in the state dir); with --ipv6-only they run over IPv6')
    .option('--lan <nodes>', 'add an outside LAN (192.168.250.0/24, with --ipv6 also fd00:250::/64, with --ipv6-only fd00:250::/64 alone; not pods) attached to these nodes, e.g. 1 or 1,2')
    .option('--lan-hosts <n>', 'hosts on the outside LAN (h1, h2, ...; 1 to 50)', String(DEFAULT_LAN_HOSTS))
    .option('--kubernetes', `also run Kubernetes ${KUBE_VERSION} on the nodes (built from source and cached; the lab's own pods default to 0)`)
    .addHelpText(
      'after',
      `
The outside LAN (--lan) is a switch kmc<id>-lan with IGMP snooping, acting as the IGMP querier:
a routable group reaches only the ports that joined it, 224.0.0.x and broadcast reach every port.
Hosts kmc<id>-h<j> have eth0 192.168.250.<10+j>; an attached node i gets kmclan 192.168.250.<i>.
Nothing routes the LAN to the underlay. \`lab exec h1 -- CMD\` runs in a LAN host.

Examples:
  sudo kmcast lab up
  sudo kmcast lab up --id t1 --nodes 4 --pods 3 --mtu 9000
  sudo kmcast lab up --nodes calico,calico --agents
  sudo kmcast lab up --id g1 --nodes 2 --lan 1 --lan-hosts 3
  sudo kmcast lab up --id s6 --ipv6 --nodes calico,bridge,calico
  sudo kmcast lab up --id o6 --ipv6-only --nodes calico,bridge,calico
  sudo kmcast lab up --id k1 --kubernetes --nodes 3

With --kubernetes the control plane runs in kmc<id>-cp (172.31.0.2:6443), each node gets its own
containerd and kubelet (ptp CNI on calico nodes, bridge CNI on bridge nodes) and the output ends
with a KUBECONFIG=<path> line for kubectl on this host. The first run builds the binaries and
images into $${CACHE_ENV} (default ${DEFAULT_CACHE_DIR}); later runs take them from there.`,
    )
    .action(async (flags: UpFlags, cmd: Command) => {
      requireRoot();
      if (flags.ipv6 && flags.kubernetes) throw new ConfigError("--ipv6 and --kubernetes conflict: the lab's Kubernetes cluster (its CNI, Services and CoreDNS) is IPv4-only");
      if (flags.ipv6Only && flags.kubernetes) {
        throw new ConfigError("--ipv6-only conflicts with --kubernetes (the lab's Kubernetes cluster, its CNI, Services and CoreDNS, is IPv4)");
      }
      const podsGiven = cmd.getOptionValueSource('pods') === 'cli';
      const spec = buildSpec(
        {
          id: flags.id,
          nodes: parseNodes(flags.nodes),
          podsPerNode: flags.kubernetes && !podsGiven ? 0 : parseIntFlag('--pods', flags.pods),
          mtu: parseIntFlag('--mtu', flags.mtu),
          ...(flags.podMtu !== undefined ? { podMtu: Object.fromEntries(parseNodes(flags.nodes).map((_, i) => [i + 1, parseIntFlag('--pod-mtu', flags.podMtu!)])) } : {}),
          service: flags.service,
          ...(flags.ipv6 ? { ipv6: true } : {}),
          ...(flags.ipv6Only ? { ipv6Only: true } : {}),
        },
        { minPods: flags.kubernetes ? 0 : 1 },
      );
      const lanHosts = parseIntFlag('--lan-hosts', flags.lanHosts);
      if (flags.lan === undefined && flags.lanHosts !== String(DEFAULT_LAN_HOSTS)) {
        throw new ConfigError('--lan-hosts needs --lan NODES (the nodes the LAN attaches to, e.g. --lan 1)');
      }
      const lan = flags.lan === undefined ? undefined : { nodes: parseLanNodes(flags.lan, spec.nodes.length), hosts: checkLanHosts(lanHosts) };
      const started = Date.now();
      const built = await labUp(spec, {
        runner: new ExecRunner(),
        onProgress: (m) => process.stderr.write(`lab: ${m}\n`),
        ...(lan ? { lan } : {}),
        ...(flags.kubernetes ? { kubernetes: true } : {}),
      });
      const agents: Record<string, number> = {};
      if (flags.agents) {
        for (const pod of built.pods) {
          const h = await startAgentProcess(built, pod, [], { detached: true });
          if (h.child.pid !== undefined) agents[pod.name] = h.child.pid;
        }
      }
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      process.stdout.write(
        `lab ${spec.id} is up in ${secs} s: ${built.nodes.length} nodes, ${built.pods.length} pods, state in ${built.stateDir}\n` +
          (built.pods.length > 0 ? podTable(built, agents) : '') +
          `DNS ${hostPort(built.dns.ip, built.dns.port)} (in ${built.router}) answers ${spec.service} with the pod IPs${spec.ipv6 ? ' (A and AAAA)' : spec.ipv6Only ? ' (AAAA only)' : ''}.\n` +
          lanLines(built.lan) +
          (flags.agents ? `Agents log to ${built.stateDir}/<pod>.agent.log\n` : '') +
          (built.kube
            ? `Kubernetes ${KUBE_VERSION}: API server ${built.kube.apiserver} (control plane ${built.kube.controlPlane}), nodes ${built.kube.nodes.join(' ')}\n` +
              `KUBECONFIG=${built.kube.kubeconfig}\n`
            : `Next: ${spec.ipv6Only ? '' : `sudo kmcast lab matrix --id ${spec.id}; `}sudo kmcast lab exec --id ${spec.id} ${built.pods[0]?.name ?? 'n1p1'} -- ip addr; sudo kmcast lab down --id ${spec.id}\n`),
      );
    });

  lab
    .command('kube-build')
    .description(
      `Build (or find in the cache) what \`lab up --kubernetes\` runs: Kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}, CoreDNS ${COREDNS_VERSION}, the pause, coredns, apps and kmcast images.`,
    )
    .addHelpText(
      'after',
      `
Binaries are built from the Go modules under lab/kube/ with nice 19 and idle I/O; images from
Debian packages with mmdebstrap, umoci and skopeo (.ci/install-deps --kube installs them). The
cache is $${CACHE_ENV} (default ${DEFAULT_CACHE_DIR}), keyed by versions and inputs.

Examples:
  sudo kmcast lab kube-build
  sudo ${CACHE_ENV}=/srv/kmc-cache kmcast lab kube-build`,
    )
    .action(async () => {
      requireRoot();
      const started = Date.now();
      const say = (m: string): void => void process.stderr.write(`kube-build: ${m}\n`);
      const bins = await ensureKubeBinaries({ onProgress: say });
      const images = await ensureImages(new ExecRunner(), bins.cache, bins.paths, say);
      const kmcastImage = await ensureKmcastImage(new ExecRunner(), bins.cache, say);
      process.stdout.write(
        `${Object.entries(bins.paths)
          .map(([name, path]) => `${name} ${path}`)
          .join('\n')}\nimage pause ${images.pause}\nimage apps ${images.apps}\nimage coredns ${images.coredns}\nimage kmcast ${kmcastImage}\n` +
          `done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
    });

  lab
    .command('down')
    .description('Remove a lab, or by default every kmc* namespace and leftover (also of killed runs).')
    .option('--id <id>', 'remove only this lab')
    .option('--all', 'remove every kmc* namespace, process, /etc/netns entry and lab state (the default)')
    .addHelpText(
      'after',
      `
Examples:
  sudo kmcast lab down
  sudo kmcast lab down --id t1`,
    )
    .action(async (flags: { id?: string; all?: boolean }) => {
      requireRoot();
      if (flags.id !== undefined && flags.all) throw new ConfigError('--id and --all conflict: give --id ID for one lab or --all for every kmc* leftover');
      const r = await labDown(new ExecRunner(), flags.id === undefined ? {} : { id: flags.id });
      process.stdout.write(`removed ${r.namespaces.length} namespaces and ${r.processes} processes${flags.id ? ` of lab ${flags.id}` : ''}\n`);
    });

  lab
    .command('status')
    .description('Show a lab: nodes, pods, DNS members, running agents, missing namespaces.')
    .option('--id <id>', 'the lab (default: the only one)')
    .option('--json', 'print the lab and its health as JSON')
    .addHelpText(
      'after',
      `
Exit codes: 0 the lab is whole, 1 namespaces are missing, the DNS server is down or (with
--kubernetes) a component of the cluster does not run.

Examples:
  sudo kmcast lab status
  sudo kmcast lab status --id t1 --json | jq '.lab.pods[].ip'`,
    )
    .action(async (flags: { id?: string; json?: boolean }) => {
      requireRoot();
      const l = await chooseLab(flags.id);
      const health = await labHealth(l, new ExecRunner());
      const whole = health.missingNamespaces.length === 0 && health.dns.running && (health.kubeDown ?? []).length === 0;
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ lab: l, health }, null, 2)}\n`);
      } else {
        const lines = [
          `lab ${l.spec.id}: ${l.nodes.length} nodes, ${l.pods.length} pods, MTU ${l.spec.mtu}, state in ${l.stateDir}`,
          `router ${l.router}; nodes: ${l.nodes.map((n) => `n${n.index} ${n.style} ${n.underlayIp} pods ${n.podCidr}${n.podCidr6 ? ` ${n.podCidr6}` : ''}`).join('; ')}`,
          `DNS ${l.dns.ip}:${l.dns.port} ${health.dns.running ? `running (pid ${health.dns.pid ?? '?'})` : 'NOT running'}: ${l.spec.service} -> ${health.dns.members.join(' ') || '(no members)'}`,
        ];
        if (l.kube) {
          lines.push(`kubernetes ${KUBE_VERSION}: API server ${l.kube.apiserver} in ${l.kube.controlPlane}, nodes ${l.kube.nodes.join(' ')}`, `KUBECONFIG=${l.kube.kubeconfig}`);
        }
        process.stdout.write(`${lines.join('\n')}\n${l.pods.length > 0 ? podTable(l, health.agents) : ''}${lanLines(l.lan)}`);
        if (health.missingNamespaces.length) process.stdout.write(`missing namespaces: ${health.missingNamespaces.join(' ')}\n`);
        if (health.kubeDown?.length) process.stdout.write(`not running: ${health.kubeDown.join(', ')}\n`);
      }
      process.exitCode = whole ? ExitCode.ok : ExitCode.failure;
    });

  lab
    .command('exec')
    .description("Run a command in a pod's or a LAN host's network namespace (stdio inherited; exits with the command's code).")
    .option('--id <id>', 'the lab (default: the only one)')
    .argument('<pod>', 'pod short name (n1p2), LAN host (h1) or namespace name')
    .argument('<command...>', 'the command and its arguments, after --')
    .addHelpText(
      'after',
      `
Examples:
  sudo kmcast lab exec n1p1 -- ip -d link show vx0
  sudo kmcast lab exec --id t1 n2p1 -- bridge fdb show dev vx0
  sudo kmcast lab exec --id g1 h1 -- tcpdump -i eth0 -n igmp
  sudo kmcast lab exec n1p1 -- python3 -c 'import socket; print(socket.gethostbyname("kmcast-peers.default.svc.cluster.local"))'`,
    )
    .action(async (podName: string, command: string[], flags: { id?: string }) => {
      requireRoot();
      const l = await chooseLab(flags.id);
      const target = findExecTarget(l, podName);
      process.exitCode = await new Promise<number>((resolve, reject) => {
        const child = netnsSpawn(command, target.netns, { stdio: 'inherit' });
        child.on('error', (err) => reject(new ConfigError(`run ${command[0] ?? ''} in ${target.kind} ${target.name}: ${err.message}`)));
        // A command killed by a signal exits 128 + signal number, as in a shell.
        child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
      });
    });

  lab
    .command('matrix')
    .description('Send multicast, link-local multicast and broadcast from every pod and print who received what.')
    .option('--id <id>', 'the lab (default: the only one)')
    .option('--count <n>', 'datagrams per sender per kind', '3')
    .option('--settle <ms>', 'pause after the receivers joined, before the first send (joins must reach the senders)', '500')
    .option('--json', 'print the matrix as JSON')
    .addHelpText(
      'after',
      `
Rows are senders, columns receivers; '-' marks the sender itself. Without kmcast, multicast and
broadcast stay on the sender's node (and on calico nodes reach nobody).

Examples:
  sudo kmcast lab matrix
  sudo kmcast lab matrix --id t1 --count 10 --json`,
    )
    .action(async (flags: { id?: string; count: string; settle: string; json?: boolean }) => {
      requireRoot();
      const l = await chooseLab(flags.id);
      if (l.spec.ipv6Only) {
        throw new ConfigError(
          `lab matrix --id ${l.spec.id}: the matrix sends IPv4 multicast and broadcast, and this lab is IPv6-only; run IPv6 traffic with \`kmcast lab exec\` (python3 sockets) or the node-mode test`,
        );
      }
      const count = parseIntFlag('--count', flags.count);
      if (count < 1 || count > 1000) throw new ConfigError(`invalid --count ${count}: must be from 1 to 1000`);
      const settleMs = parseIntFlag('--settle', flags.settle);
      const m = await trafficMatrix(l, { count, settleMs, awaitJoinsMs: 10_000 });
      process.stdout.write(flags.json ? `${JSON.stringify(m, null, 2)}\n` : m.kinds.map((k) => formatMatrix(m, k)).join('\n'));
    });
}
