/**
 * `kmcast generate --mode gateway`: the kmcast-gateway DaemonSet, which runs the node agent as a
 * gateway (`kmcast gateway`) on the nodes labelled kmcast.io/gateway=true, its ConfigMap, and the
 * change the kmcast-node DaemonSet needs (a NotIn affinity on the same label: one agent per node
 * owns its devices and ports). Pure: options in, YAML text out; deploy/gateway is the same set
 * for kustomize, and a test keeps the two equal.
 *
 * The gateway pod is the node agent's pod with three differences: the `gateway` command, the
 * gateway's settings from ConfigMap kmcast-gateway, and the node selector. It carries the label
 * the agents' headless Service selects, so the other node agents find it as a peer.
 */
import { isMap, isScalar } from 'yaml';
import type { IDaemonSet } from 'kubernetes-models/apps/v1';
import type { IConfigMap, IEnvVar } from 'kubernetes-models/v1';
import { ConfigError } from '../errors.js';
import { isSingle, parseGatewayGroups } from '../gateway/groups.js';
import { NODE_CONTROL_PORT, NODE_HTTP_PORT, NODE_VXLAN_PORT } from '../node/api.js';
import { GATEWAY_DEFAULTS as AGENT_GATEWAY_DEFAULTS, MAX_GATEWAY_RATE } from '../gateway/config.js';
import { doc } from './generate.js';
import type { GenerateResult } from './generate.js';
import { NODE_CONFIGMAP, NODE_DAEMONSET, NODE_NAMESPACE, NODE_SERVICES_KEY } from './node-inject.js';
import { stringifyDocs } from './yamlio.js';

export const GATEWAY_DAEMONSET = 'kmcast-gateway';
export const GATEWAY_CONFIGMAP = 'kmcast-gateway';
/** Nodes with this label (value "true") run the gateway instead of the ordinary node agent. */
export const GATEWAY_NODE_LABEL = 'kmcast.io/gateway';
/** Tells the gateway agents' pods from the node agents' pods (both carry the Service's label). */
export const GATEWAY_POD_LABEL = 'kmcast.io/agent';
/** The label the agents' headless Service (their --peers-service) selects, on both DaemonSets. */
export const PEERS_LABEL = { 'app.kubernetes.io/component': 'node' } as const;
/** The labels deploy/node's kustomization puts on every object's metadata. */
export const NODE_OBJECT_LABELS = { 'app.kubernetes.io/name': 'kmcast-node', 'app.kubernetes.io/part-of': 'kmcast' } as const;

/** ConfigMap kmcast-gateway: key -> the agent's environment variable (KMCAST_<FLAG>). */
export const GATEWAY_KEYS = {
  interface: 'KMCAST_GATEWAY_INTERFACE',
  groups: 'KMCAST_GATEWAY_GROUP',
  service: 'KMCAST_GATEWAY_SERVICE',
  snat: 'KMCAST_GATEWAY_SNAT',
  'min-ttl': 'KMCAST_GATEWAY_MIN_TTL',
  rate: 'KMCAST_GATEWAY_RATE',
} as const;
export type GatewayKey = keyof typeof GATEWAY_KEYS;
/** Keys the agent cannot start without; the others are optional (absent: the agent's default). */
const REQUIRED_KEYS: readonly GatewayKey[] = ['interface', 'groups'];

/** The agent's own defaults (src/gateway/config.ts), typed for the generate flags. */
export const GATEWAY_DEFAULTS = {
  snat: AGENT_GATEWAY_DEFAULTS.gatewaySnat as 'on' | 'off',
  minTtl: Number(AGENT_GATEWAY_DEFAULTS.gatewayMinTtl),
  rate: Number(AGENT_GATEWAY_DEFAULTS.gatewayRate),
} as const;

export interface GatewayGenerateOptions {
  /** `--gateway-interface`: the gateway node's LAN/uplink interface. */
  readonly interface: string;
  /** `--gateway-group` values as given (each may be a comma list). */
  readonly groups: readonly string[];
  /** `--gateway-service`: the domain served; absent, the agent takes the only one. */
  readonly service?: string;
  readonly snat: 'on' | 'off';
  readonly minTtl: number;
  readonly rate: number;
  /** The kmcast image (the node agent's). */
  readonly image: string;
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/** The ConfigMap's data: every setting checked, the groups in the parser's normal form. */
export function gatewaySettings(o: GatewayGenerateOptions): Partial<Record<GatewayKey, string>> {
  if (!IFNAME.test(o.interface) || o.interface === '.' || o.interface === '..') {
    throw new ConfigError(`--gateway-interface: invalid interface name "${o.interface}" (the gateway node's LAN interface, e.g. eth1)`);
  }
  const groups = parseGatewayGroups(o.groups);
  if (groups.length === 0) throw new ConfigError('--gateway-group: at least one entry is needed (nothing crosses unless listed), e.g. --gateway-group 239.10.0.0/16=in');
  if (o.service !== undefined && (!DNS_SUBDOMAIN.test(o.service) || !o.service.includes('.'))) {
    throw new ConfigError(
      `--gateway-service: invalid domain "${o.service}" (the FQDN of the domain's headless Service, as in the "${NODE_SERVICES_KEY}" key of ConfigMap ${NODE_NAMESPACE}/${NODE_CONFIGMAP}, without =VNI)`,
    );
  }
  if (o.snat !== 'on' && o.snat !== 'off') throw new ConfigError(`--gateway-snat: "${String(o.snat)}" is not on or off`);
  if (!Number.isInteger(o.minTtl) || o.minTtl < 1 || o.minTtl > 255) throw new ConfigError(`--gateway-min-ttl: invalid value "${o.minTtl}" (an integer between 1 and 255)`);
  if (!Number.isInteger(o.rate) || o.rate < 0 || o.rate > MAX_GATEWAY_RATE) {
    throw new ConfigError(`--gateway-rate: invalid value "${o.rate}" (datagrams per second per group and direction, 0 to ${MAX_GATEWAY_RATE}; 0 = no limit)`);
  }
  return {
    interface: o.interface,
    groups: groups.map((g) => `${isSingle(g) ? g.base : g.prefix}=${g.direction}`).join(','),
    ...(o.service !== undefined ? { service: o.service } : {}),
    snat: o.snat,
    'min-ttl': String(o.minTtl),
    rate: String(o.rate),
  };
}

/** The node DaemonSet's change: never on a gateway node (strategic merge patch, deploy/gateway's too). */
export function nodeAffinityPatch(): IDaemonSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: NODE_DAEMONSET, namespace: NODE_NAMESPACE },
    spec: {
      template: {
        spec: {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchExpressions: [{ key: GATEWAY_NODE_LABEL, operator: 'NotIn', values: ['true'] }] }],
              },
            },
          },
        },
      },
    } as IDaemonSet['spec'],
  };
}

/** `kubectl patch` of the running kmcast-node DaemonSet with nodeAffinityPatch(). */
export function nodePatchCommand(): string {
  const p = nodeAffinityPatch();
  return `kubectl -n ${NODE_NAMESPACE} patch daemonset ${NODE_DAEMONSET} --type strategic -p '${JSON.stringify({ spec: p.spec })}'`;
}

export function gatewayConfigMap(data: Partial<Record<GatewayKey, string>>): IConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: GATEWAY_CONFIGMAP, namespace: NODE_NAMESPACE, labels: { ...NODE_OBJECT_LABELS } },
    data: { ...data },
  };
}

export function gatewayDaemonSet(image: string): IDaemonSet {
  const labels = { ...PEERS_LABEL, [GATEWAY_POD_LABEL]: 'gateway' };
  const fromGateway: IEnvVar[] = (Object.keys(GATEWAY_KEYS) as GatewayKey[]).map((key) => ({
    name: GATEWAY_KEYS[key],
    valueFrom: { configMapKeyRef: { name: GATEWAY_CONFIGMAP, key, ...(REQUIRED_KEYS.includes(key) ? {} : { optional: true }) } },
  }));
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: GATEWAY_DAEMONSET, namespace: NODE_NAMESPACE, labels: { ...NODE_OBJECT_LABELS } },
    spec: {
      selector: { matchLabels: labels },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: NODE_DAEMONSET,
          automountServiceAccountToken: false,
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          priorityClassName: 'system-node-critical',
          nodeSelector: { 'kubernetes.io/os': 'linux', [GATEWAY_NODE_LABEL]: 'true' },
          tolerations: [{ operator: 'Exists' }],
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'gateway',
              image,
              args: [
                'gateway',
                `--peers-service=${NODE_DAEMONSET}.${NODE_NAMESPACE}.svc.cluster.local`,
                '--key-file=/etc/kmcast/key/key',
                '--node-ip=$(NODE_IP)',
                `--http=0.0.0.0:${NODE_HTTP_PORT}`,
                `--vxlan-port=${NODE_VXLAN_PORT}`,
                `--control-port=${NODE_CONTROL_PORT}`,
              ],
              env: [
                { name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
                { name: 'KMCAST_SERVICE', valueFrom: { configMapKeyRef: { name: NODE_CONFIGMAP, key: NODE_SERVICES_KEY } } },
                ...fromGateway,
              ],
              ports: [
                { name: 'kmc-http', containerPort: NODE_HTTP_PORT, protocol: 'TCP' },
                { name: 'kmc-vxlan', containerPort: NODE_VXLAN_PORT, protocol: 'UDP' },
                { name: 'kmc-control', containerPort: NODE_CONTROL_PORT, protocol: 'UDP' },
              ],
              readinessProbe: { httpGet: { path: '/readyz', port: 'kmc-http' }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/healthz', port: 'kmc-http' }, periodSeconds: 10, failureThreshold: 3 },
              resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } },
              securityContext: {
                privileged: false,
                allowPrivilegeEscalation: false,
                runAsUser: 0,
                runAsNonRoot: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'SYS_ADMIN', 'NET_BROADCAST'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
              volumeMounts: [
                { name: 'netns', mountPath: '/run/netns', mountPropagation: 'HostToContainer', readOnly: true },
                { name: 'key', mountPath: '/etc/kmcast/key', readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            { name: 'netns', hostPath: { path: '/run/netns', type: 'DirectoryOrCreate' } },
            { name: 'key', secret: { secretName: 'kmcast-node-key', defaultMode: 0o400 } },
            { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
          ],
        },
      },
    },
  };
}

const indent = (text: string): string =>
  text
    .split('\n')
    .map((l) => ` ${l}`)
    .join('\n');

/** The gateway's manifests: ConfigMap kmcast-gateway and DaemonSet kmcast-gateway. */
export function generateGateway(o: GatewayGenerateOptions): GenerateResult {
  const data = gatewaySettings(o);
  const served = data.service ?? `the only domain in the "${NODE_SERVICES_KEY}" key of ConfigMap ${NODE_NAMESPACE}/${NODE_CONFIGMAP}`;
  const cm = doc(
    gatewayConfigMap(data),
    indent(`kmcast generate --mode gateway: ${data.interface}, groups ${data.groups}
A gateway carries multicast between one domain's member pods (${served})
and the network on the interface ${data.interface} of the nodes labelled ${GATEWAY_NODE_LABEL}=true:
it is the node agent of those nodes (kmcast gateway = kmcast node + the settings below).
Only the groups and directions listed cross. With two or more gateway nodes one is active (the
lowest node IP), the others stand by and take over when it leaves. See docs/gateway.md.
Needs deploy/node installed (namespace, key Secret, Service, ConfigMap ${NODE_CONFIGMAP}). In this order:
  1. kubectl apply -f <this file>
  2. the node agent must not run on gateway nodes (one agent per node owns its devices and ports):
     ${nodePatchCommand()}
     (deploy/gateway does 1 and 2 with kustomize: kubectl apply -k deploy/gateway)
  3. kubectl label node <node> ${GATEWAY_NODE_LABEL}=true
The agent reads these keys at start: after an edit,
  kubectl -n ${NODE_NAMESPACE} rollout restart daemonset/${GATEWAY_DAEMONSET}`),
  );
  // Double-quoted: a YAML 1.1 reader (kubectl apply's) takes a plain on or off for a boolean.
  const values = cm.get('data');
  if (isMap(values)) for (const item of values.items) if (isScalar(item.value)) item.value.type = 'QUOTE_DOUBLE';
  const ds = doc(
    gatewayDaemonSet(o.image),
    ` The ${NODE_DAEMONSET} agent's pod (same image, hostNetwork, NET_ADMIN and SYS_ADMIN) with the gateway
 command and settings, only on nodes labelled ${GATEWAY_NODE_LABEL}=true. Its pods carry the label the
 agents' headless Service selects, so the node agents find the gateway as a peer; that label also
 matches the ${NODE_DAEMONSET} DaemonSet's selector, whose controller leaves pods another controller owns.`,
  );
  const notes = [
    `gateway: patch the ${NODE_DAEMONSET} DaemonSet so it leaves gateway nodes: ${nodePatchCommand()}`,
    `gateway: then label the gateway node(s): kubectl label node <node> ${GATEWAY_NODE_LABEL}=true`,
  ];
  if (data.service === undefined)
    notes.push(`gateway: no --gateway-service (or --name and --namespace): the agent serves the only domain of ${NODE_NAMESPACE}/${NODE_CONFIGMAP} (with several, it needs --gateway-service)`);
  return { yaml: stringifyDocs([cm, ds]), notes };
}
