import type { Command } from 'commander';
import { Option } from 'commander';
import { ConfigError } from '../errors.js';
import { generate, MODES } from '../manifests/generate.js';
import type { Mode } from '../manifests/generate.js';
import { parseGroupSpec } from '../manifests/groups.js';
import type { GroupSpec } from '../manifests/groups.js';
import { formatFindings, lintDocs } from '../manifests/lint.js';
import { parseYamlDocs } from '../manifests/yamlio.js';
import { addAgentOptions, agentOptionsFrom, checkImage, checkNamespace } from './inject.js';
import type { AgentFlags } from './inject.js';

interface GenerateFlags extends AgentFlags {
  name: string;
  group: GroupSpec[];
  mode: Mode;
  namespace?: string;
  replicas: number;
  multusType: 'macvlan' | 'ipvlan';
  master: string;
  subnet: string;
  createSecret: boolean;
}

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .summary('write a complete deployment for a multicast app (overlay, host-network, multus, node)')
    .description('Write a complete, commented deployment for a multicast application (YAML on stdout)')
    .requiredOption('--name <app>', 'application name')
    .requiredOption('--image <img>', 'application image')
    .requiredOption('--group <group:port>', 'multicast group the app uses (repeatable)', (v: string, prev: GroupSpec[] = []) => [...prev, parseGroupSpec(v)])
    .addOption(new Option('--mode <mode>', 'how multicast reaches the pods').choices(MODES).default('overlay'))
    .option('--namespace <ns>', 'namespace of the objects (default: none, kubectl decides)')
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
    .option('--create-secret', 'overlay: also emit the key Secret with a random key', false);
  addAgentOptions(cmd, '--agent-image')
    .addHelpText(
      'after',
      `
Modes:
  overlay       the app plus the kmcast sidecar, headless Service and NetworkPolicy (any CNI)
  host-network  hostNetwork pods, one per node, ClusterFirstWithHostNet (node network must carry multicast)
  multus        a macvlan (bridge) or ipvlan (L2) secondary network with the 224.0.0.0/4 route
  node          pods with no privilege (Pod Security restricted), served by the kmcast-node DaemonSet

Examples:
  kmcast generate --name ticker --image example/ticker:2 --group 239.1.1.1:5000
  kmcast generate --name ptp --image example/ptp:1 --group 239.1.1.2:319 --mode host-network
  kmcast generate --name cam --image example/cam:1 --group 239.5.5.5:1234 --mode multus --master ens4
  kmcast generate --name ticker --image example/ticker:2 --group 239.1.1.1:5000 --mode node --namespace trading`,
    )
    .action((flags: GenerateFlags & { agentImage: string }) => {
    const agent = agentOptionsFrom({ ...flags, image: flags.agentImage }, '--agent-image');
    checkImage('--image', flags.image);
    if (flags.namespace !== undefined) checkNamespace('--namespace', flags.namespace);
    const { yaml: text, notes } = generate({
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
    process.stdout.write(text);
    const say = (line: string): boolean => process.stderr.write(`kmcast generate: ${line}\n`);
    notes.forEach(say);
    // The output is checked by our own lint; anything it finds (a GLOP group, say) goes to stderr.
    const findings = lintDocs(parseYamlDocs(text, 'generated'));
    if (findings.length > 0) formatFindings(findings, 1).trimEnd().split('\n').forEach(say);
  });
}
