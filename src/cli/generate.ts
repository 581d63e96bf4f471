import type { Command } from 'commander';
import { Option } from 'commander';
import { ConfigError } from '../errors.js';
import { MAX_GATEWAY_RATE } from '../gateway/config.js';
import { GATEWAY_DEFAULTS, generateGateway } from '../manifests/gateway-generate.js';
import { generate, MODES } from '../manifests/generate.js';
import type { GenerateResult, Mode } from '../manifests/generate.js';
import { domainName } from '../manifests/node-inject.js';
import { parseGroupSpec } from '../manifests/groups.js';
import type { GroupSpec } from '../manifests/groups.js';
import { formatFindings, lintDocs } from '../manifests/lint.js';
import { parseYamlDocs } from '../manifests/yamlio.js';
import { addAgentOptions, agentOptionsFrom, checkAppName, checkImage, checkNamespace, intIn } from './inject.js';
import type { AgentFlags } from './inject.js';

type GenerateMode = Mode | 'gateway';
const GENERATE_MODES: readonly GenerateMode[] = [...MODES, 'gateway'];

interface GenerateFlags extends Omit<AgentFlags, 'image'> {
  name?: string;
  image?: string;
  group?: GroupSpec[];
  mode: GenerateMode;
  namespace?: string;
  replicas: number;
  multusType: 'macvlan' | 'ipvlan';
  master: string;
  subnet: string;
  createSecret: boolean;
  gatewayInterface?: string;
  gatewayGroup?: string[];
  gatewayService?: string;
  gatewaySnat: 'on' | 'off';
  gatewayMinTtl: number;
  gatewayRate: number;
}

/** Options of the app modes (an application's pods), refused with --mode gateway rather than ignored. */
const APP_ONLY: Record<string, string> = {
  image: '--image',
  group: '--group',
  replicas: '--replicas',
  multusType: '--multus-type',
  master: '--master',
  subnet: '--subnet',
  createSecret: '--create-secret',
  legacy: '--legacy',
  vni: '--vni',
  vxlanPort: '--vxlan-port',
  controlPort: '--control-port',
  httpPort: '--http-port',
};
/** The gateway's options, refused with the app modes. */
const GATEWAY_ONLY: Record<string, string> = {
  gatewayInterface: '--gateway-interface',
  gatewayGroup: '--gateway-group',
  gatewayService: '--gateway-service',
  gatewaySnat: '--gateway-snat',
  gatewayMinTtl: '--gateway-min-ttl',
  gatewayRate: '--gateway-rate',
};

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .summary('write a complete deployment for a multicast app (overlay, host-network, multus, node), or a gateway')
    .description('Write a complete, commented deployment for a multicast application, or (--mode gateway) the gateway between a domain and a node LAN (YAML on stdout)')
    .option('--name <app>', 'application name (required; gateway: the app whose domain the gateway serves, with --namespace)')
    .option('--image <img>', 'application image (required, except for gateway)')
    .option('--group <group:port>', 'multicast group the app uses (repeatable; required, except for gateway)', (v: string, prev: GroupSpec[] = []) => [...prev, parseGroupSpec(v)])
    .addOption(new Option('--mode <mode>', 'how multicast reaches the pods').choices(GENERATE_MODES).default('overlay'))
    .option('--namespace <ns>', "namespace of the objects (default: none, kubectl decides; gateway: the app's namespace)")
    .addOption(
      new Option('--replicas <n>', 'replicas of the app').default(3).argParser((v: string) => {
        // spec.replicas is an int32 in the Kubernetes API.
        if (!/^\d{1,10}$/.test(v) || Number(v) < 1 || Number(v) > 2147483647) throw new ConfigError(`--replicas: invalid value "${v}" (an integer between 1 and 2147483647)`);
        return Number(v);
      }),
    )
    .addOption(new Option('--multus-type <type>', 'multus: secondary interface type').choices(['macvlan', 'ipvlan']).default('macvlan'))
    .option('--master <if>', 'multus: node interface of the secondary network', 'eth1')
    .option('--subnet <cidr>', 'multus: address range of the secondary network', '10.201.0.0/24')
    .option('--create-secret', 'overlay: also emit the key Secret with a random key', false)
    .option('--gateway-interface <if>', "gateway: the gateway node's LAN interface (e.g. eth1)")
    .option('--gateway-group <spec>', 'gateway: GROUP[/LEN]=in|out|both of either family, what crosses (repeatable or a comma list)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--gateway-service <fqdn>', "gateway: the domain served (default: --name's in --namespace, else the agent's only domain)")
    .addOption(new Option('--gateway-snat <on|off>', 'gateway: outbound datagrams leave with the interface address as source').choices(['on', 'off']).default(GATEWAY_DEFAULTS.snat))
    .addOption(new Option('--gateway-min-ttl <n>', 'gateway: datagrams with a lower IP TTL do not cross').default(GATEWAY_DEFAULTS.minTtl).argParser(intIn('--gateway-min-ttl', 1, 255)))
    .addOption(
      new Option('--gateway-rate <pps>', 'gateway: datagrams per second per group and direction (0: no limit)').default(GATEWAY_DEFAULTS.rate).argParser(intIn('--gateway-rate', 0, MAX_GATEWAY_RATE)),
    );
  addAgentOptions(cmd, '--agent-image')
    .addHelpText(
      'after',
      `
Modes:
  overlay       the app plus the kmcast sidecar, headless Service and NetworkPolicy (any CNI)
  host-network  hostNetwork pods, one per node, ClusterFirstWithHostNet (node network must carry multicast)
  multus        a macvlan (bridge) or ipvlan (L2) secondary network with the 224.0.0.0/4 route
  node          pods with no privilege (Pod Security restricted), served by the kmcast-node DaemonSet
  gateway       the kmcast-gateway DaemonSet: multicast between a domain's pods and a node's LAN

Examples:
  kmcast generate --name ticker --image example/ticker:2 --group 239.1.1.1:5000
  kmcast generate --name ptp --image example/ptp:1 --group 239.1.1.2:319 --mode host-network
  kmcast generate --name cam --image example/cam:1 --group 239.5.5.5:1234 --mode multus --master ens4
  kmcast generate --name ticker --image example/ticker:2 --group 239.1.1.1:5000 --mode node --namespace trading
  kmcast generate --mode gateway --name ticker --namespace trading --gateway-interface eth1 \\
    --gateway-group 239.10.0.0/16=in --gateway-group 239.10.9.9=out`,
    )
    .action((flags: GenerateFlags & { agentImage: string }) => {
      const given = (key: string): boolean => ['cli', 'env'].includes(cmd.getOptionValueSource(key) ?? '');
      const agent = agentOptionsFrom({ ...flags, image: flags.agentImage }, '--agent-image');
      if (flags.namespace !== undefined) checkNamespace('--namespace', flags.namespace);
      let result: GenerateResult;
      if (flags.mode === 'gateway') {
        for (const [key, flag] of Object.entries(APP_ONLY)) {
          if (given(key)) throw new ConfigError(`${flag}: not for --mode gateway (the gateway is the kmcast agent: --agent-image; what crosses: --gateway-group)`);
        }
        if (flags.gatewayInterface === undefined) throw new ConfigError("--gateway-interface: required for --mode gateway (the gateway node's LAN interface, e.g. eth1)");
        if (flags.name !== undefined) checkAppName('--name', flags.name);
        if (flags.name === undefined && flags.namespace !== undefined)
          throw new ConfigError("--namespace: in --mode gateway it names the domain together with --name (the gateway's objects go to kmcast-node)");
        if (flags.name !== undefined && flags.namespace === undefined)
          throw new ConfigError('--name: needs --namespace in --mode gateway (the domain is <name>-kmcast.<namespace>.svc.<cluster-domain>)');
        if (flags.name !== undefined && flags.gatewayService !== undefined) throw new ConfigError('--gateway-service: give it or --name with --namespace, not both');
        const service = flags.gatewayService ?? (flags.name !== undefined ? domainName(flags.name, flags.namespace, agent) : undefined);
        result = generateGateway({
          interface: flags.gatewayInterface,
          groups: flags.gatewayGroup ?? [],
          ...(service !== undefined ? { service } : {}),
          snat: flags.gatewaySnat,
          minTtl: flags.gatewayMinTtl,
          rate: flags.gatewayRate,
          image: agent.image,
        });
      } else {
        for (const [key, flag] of Object.entries(GATEWAY_ONLY)) if (given(key)) throw new ConfigError(`${flag}: only for --mode gateway`);
        if (flags.name === undefined) throw new ConfigError("--name: required (the application's name)");
        if (flags.image === undefined) throw new ConfigError("--image: required (the application's image)");
        if (flags.group === undefined) throw new ConfigError('--group: required, e.g. --group 239.1.2.3:5000 (repeatable)');
        checkImage('--image', flags.image);
        result = generate({
          name: flags.name,
          image: flags.image,
          groups: flags.group,
          mode: flags.mode,
          ...(flags.namespace ? { namespace: flags.namespace } : {}),
          replicas: flags.replicas,
          multusType: flags.multusType,
          master: flags.master,
          subnet: flags.subnet,
          createSecret: flags.createSecret,
          agent,
        });
      }
      const { yaml: text, notes } = result;
      process.stdout.write(text);
      const say = (line: string): boolean => process.stderr.write(`kmcast generate: ${line}\n`);
      notes.forEach(say);
      // The output is checked by our own lint; anything it finds (a GLOP group, say) goes to stderr.
      const findings = lintDocs(parseYamlDocs(text, 'generated'));
      if (findings.length > 0) formatFindings(findings, 1).trimEnd().split('\n').forEach(say);
    });
}
