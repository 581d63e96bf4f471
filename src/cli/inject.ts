import type { Command } from 'commander';
import { Option } from 'commander';
import { ConfigError } from '../errors.js';
import { injectDocs } from '../manifests/inject.js';
import { INJECT_MODES } from '../manifests/node-inject.js';
import type { InjectMode } from '../manifests/node-inject.js';
import { DEFAULT_AGENT_OPTIONS } from '../manifests/sidecar.js';
import type { AgentOptions } from '../manifests/sidecar.js';
import { readYamlFile, stringifyDocs } from '../manifests/yamlio.js';

export function intIn(flag: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new ConfigError(`${flag}: invalid value "${v}" (must be an integer between ${min} and ${max})`);
    return n;
  };
}

/** The agent options shared by inject, generate and webhook. */
export function addAgentOptions(cmd: Command, imageFlag: '--image' | '--agent-image' = '--image'): Command {
  const d = DEFAULT_AGENT_OPTIONS;
  return cmd
    .option(`${imageFlag} <img>`, 'agent image', d.image)
    .option('--legacy', 'init container + ordinary sidecar, for clusters older than 1.29 (no native sidecars)', false)
    .addOption(new Option('--vni <n>', 'VXLAN network identifier').default(d.vni).argParser(intIn('--vni', 1, 16777215)))
    .addOption(new Option('--vxlan-port <n>', 'UDP port of the overlay').default(d.vxlanPort).argParser(intIn('--vxlan-port', 1, 65535)))
    .addOption(new Option('--control-port <n>', 'UDP port of the control protocol').default(d.controlPort).argParser(intIn('--control-port', 1, 65535)))
    .addOption(new Option('--http-port <n>', "TCP port of the agent's /metrics, /healthz, /readyz").default(d.httpPort).argParser(intIn('--http-port', 1, 65535)))
    .option('--cluster-domain <domain>', 'cluster DNS suffix used in the Service FQDN', d.clusterDomain);
}

export interface AgentFlags {
  image: string;
  legacy: boolean;
  vni: number;
  vxlanPort: number;
  controlPort: number;
  httpPort: number;
  clusterDomain: string;
}

// What the agent's --service accepts (a DNS name); the cluster domain ends KMCAST_SERVICE.
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// The longest derived name is `<app>-kmcast-key`; Service names are DNS-1035 labels (63 chars).
const MAX_APP = 63 - '-kmcast-key'.length;

/** A container image reference: not empty, no whitespace or control characters. */
export function checkImage(flag: string, image: string): string {
  if (image === '' || /[\s\p{Cc}]/u.test(image) || image.length > 512) {
    throw new ConfigError(`${flag}: invalid image ${JSON.stringify(image)} (an image reference such as registry/name:tag, no spaces)`);
  }
  return image;
}

/** A namespace: a DNS-1123 label (lower-case letters, digits, '-', at most 63 characters). */
export function checkNamespace(flag: string, ns: string): string {
  if (!DNS_LABEL.test(ns))
    throw new ConfigError(`${flag}: invalid namespace ${JSON.stringify(ns)} (lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit)`);
  return ns;
}

/** An application name for --name: it names the Service `<name>-kmcast` and the Secret `<name>-kmcast-key`. */
export function checkAppName(flag: string, name: string): string {
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > MAX_APP) {
    throw new ConfigError(`${flag}: invalid name ${JSON.stringify(name)} (lower-case letters, digits and '-', starting with a letter, at most ${MAX_APP} characters)`);
  }
  return name;
}

export function agentOptionsFrom(f: AgentFlags, imageFlag: '--image' | '--agent-image' = '--image'): AgentOptions {
  checkImage(imageFlag, f.image);
  if (!DNS_SUBDOMAIN.test(f.clusterDomain)) {
    throw new ConfigError(`--cluster-domain: invalid domain ${JSON.stringify(f.clusterDomain)} (a DNS name such as cluster.local: lower-case labels of letters, digits and '-', separated by dots)`);
  }
  if (f.vxlanPort === f.controlPort) throw new ConfigError(`--vxlan-port and --control-port: both are ${f.vxlanPort}; pick two different ports`);
  if ([4789, 8472, 6081].includes(f.vxlanPort)) {
    throw new ConfigError(`--vxlan-port: ${f.vxlanPort} is a CNI tunnel port that Cilium, Calico or OpenShift drop from pods; keep the default 7471`);
  }
  return { image: f.image, legacy: f.legacy, vni: f.vni, vxlanPort: f.vxlanPort, controlPort: f.controlPort, httpPort: f.httpPort, clusterDomain: f.clusterDomain };
}

interface InjectFlags extends AgentFlags {
  file: string[];
  createSecret: boolean;
  networkPolicy?: boolean;
  strict: boolean;
  name?: string;
  mode: InjectMode;
}

/** Flags that only mean something for the sidecar: refused with --mode node rather than ignored. */
export function checkNodeModeFlags(f: { mode: InjectMode; legacy: boolean; createSecret?: boolean }): void {
  if (f.mode !== 'node') return;
  if (f.legacy) throw new ConfigError('--legacy: only for --mode sidecar (node mode adds an ordinary init container, which every Kubernetes version runs)');
  if (f.createSecret) throw new ConfigError('--create-secret: only for --mode sidecar (in node mode the pods hold no key; the kmcast-node DaemonSet has its own)');
}

export function registerInject(program: Command): void {
  const cmd = program
    .command('inject')
    .summary('add the kmcast sidecar and headless Service (and, where needed, a NetworkPolicy) to manifests')
    .description('Add the kmcast agent to the pod templates of Kubernetes manifests; YAML on stdout, a report on stderr')
    .requiredOption('-f, --file <file>', "manifest file, '-' for stdin (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
    .option('--create-secret', 'also emit the key Secret with a random key', false)
    .option('--network-policy', "always emit the members' NetworkPolicy (default: only where a policy in the input selects the pods)")
    .option('--no-network-policy', "never emit the members' NetworkPolicy")
    .option('--strict', 'fail (exit 2) instead of skipping what cannot be injected', false)
    .option('--name <name>', 'application name for the Service and Secret (default: from labels or the workload name)')
    .addOption(
      new Option('--mode <mode>', 'sidecar: the kmcast agent in each pod (NET_ADMIN); node: the kmcast-node DaemonSet serves the pods, which get only an unprivileged wait init container')
        .choices(INJECT_MODES)
        .default('sidecar'),
    );
  addAgentOptions(cmd)
    .addHelpText(
      'after',
      `
Kinds with a pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) and
Lists of them are injected; other kinds pass through unchanged. Injecting twice equals once.

Examples:
  kmcast inject -f app.yaml > app.kmcast.yaml
  kubectl get deploy web -o yaml | kmcast inject -f - --create-secret | kubectl apply -f -
  kmcast inject -f app.yaml --legacy          # Kubernetes < 1.29
  kmcast inject -f app.yaml --mode node       # no privilege in the pods (Pod Security restricted)

--mode node needs the kmcast-node DaemonSet (deploy/node); the report names the domain to add
to its ConfigMap. Switching an injected object between modes replaces what the other mode added.`,
    )
    .action((flags: InjectFlags) => {
      checkNodeModeFlags(flags);
      const agent = { ...agentOptionsFrom(flags), mode: flags.mode };
      if (flags.name !== undefined) checkAppName('--name', flags.name);
      const srcs = flags.file.flatMap((f) => readYamlFile(f, undefined, '--file'));
      const result = injectDocs(srcs, {
        ...agent,
        createSecret: flags.createSecret,
        networkPolicy: flags.networkPolicy ?? 'auto',
        strict: flags.strict,
        ...(flags.name ? { name: flags.name } : {}),
      });
      process.stdout.write(stringifyDocs(result.docs));
      for (const line of result.report) process.stderr.write(`kmcast inject: ${line}\n`);
    });
}
