/**
 * Pure builders for what kmcast adds to an application: the agent container (native sidecar or
 * the legacy init + sidecar pair), the dedicated headless Service, the NetworkPolicy and the key
 * Secret. The agent's flags are fixed by DESIGN section 3; everything is passed as KMCAST_* env.
 */
import { randomBytes } from 'node:crypto';
import type { IContainer, IService, ISecret, IVolume } from 'kubernetes-models/v1';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { VERSION } from '../version.js';

export const DEFAULT_IMAGE = `kmcast/kmcast:${VERSION}`;
export const SIDECAR_NAME = 'kmcast';
export const SETUP_NAME = 'kmcast-setup';
export const KEY_VOLUME = 'kmcast-key';
export const KEY_DIR = '/etc/kmcast/key';
export const MEMBER_LABEL = 'kmcast.io/member';
export const STATUS_ANNOTATION = 'kmcast.io/status';
export const NAME_ANNOTATION = 'kmcast.io/name';
export const GENERATED_FOR_ANNOTATION = 'kmcast.io/generated-for';
export const INJECT_LABEL = 'kmcast.io/inject';
export const MANAGED_BY = { key: 'app.kubernetes.io/managed-by', value: 'kmcast' } as const;

export interface AgentOptions {
  /** Agent image; default `kmcast/kmcast:<version>`. */
  readonly image: string;
  /** Init container + ordinary sidecar instead of a native sidecar (clusters older than 1.29). */
  readonly legacy: boolean;
  readonly vni: number;
  readonly vxlanPort: number;
  readonly controlPort: number;
  readonly httpPort: number;
  /** DNS suffix of the cluster, used in the headless Service FQDN. */
  readonly clusterDomain: string;
  /** `sidecar` (the default) or `node`: the kmcast-node DaemonSet serves the pods (node-inject.ts). */
  readonly mode?: 'sidecar' | 'node';
}

export const DEFAULT_AGENT_OPTIONS: AgentOptions = {
  image: DEFAULT_IMAGE,
  legacy: false,
  vni: 4242,
  vxlanPort: 7471,
  controlPort: 7470,
  httpPort: 9470,
  clusterDomain: 'cluster.local',
};

export const serviceName = (app: string): string => `${app}-kmcast`;
export const secretName = (app: string): string => `${app}-kmcast-key`;
export const policyName = (app: string): string => `${app}-kmcast`;

function agentEnv(app: string, o: AgentOptions): NonNullable<IContainer['env']> {
  return [
    { name: 'KMCAST_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    // $(POD_NAMESPACE) is expanded by the kubelet, so the same manifest works in any namespace.
    { name: 'KMCAST_SERVICE', value: `${serviceName(app)}.$(POD_NAMESPACE).svc.${o.clusterDomain}` },
    { name: 'KMCAST_KEY_FILE', value: `${KEY_DIR}/key` },
    { name: 'KMCAST_VNI', value: String(o.vni) },
    { name: 'KMCAST_VXLAN_PORT', value: String(o.vxlanPort) },
    { name: 'KMCAST_CONTROL_PORT', value: String(o.controlPort) },
    { name: 'KMCAST_HTTP', value: `:${o.httpPort}` },
  ];
}

/**
 * NET_ADMIN and nothing else. The agent runs as uid 0 because Kubernetes grants added
 * capabilities to non-root users only through the bounding set, not the effective set; the
 * explicit runAsNonRoot: false overrides a pod-level runAsNonRoot: true for this container only.
 */
function securityContext(): NonNullable<IContainer['securityContext']> {
  return {
    capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] },
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsUser: 0,
    runAsNonRoot: false,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

const resources = (): NonNullable<IContainer['resources']> => ({
  requests: { cpu: '10m', memory: '48Mi' },
  limits: { cpu: '500m', memory: '128Mi' },
});

const keyMount = (): NonNullable<IContainer['volumeMounts']> => [{ name: KEY_VOLUME, mountPath: KEY_DIR, readOnly: true }];

/** The long-running agent container. `native` adds restartPolicy: Always (an initContainers entry). */
export function agentContainer(app: string, o: AgentOptions, native: boolean): IContainer {
  const c: IContainer = {
    name: SIDECAR_NAME,
    image: o.image,
    args: ['agent'],
    ...(native ? { restartPolicy: 'Always' } : {}),
    env: agentEnv(app, o),
    ports: [
      { name: 'kmc-vxlan', containerPort: o.vxlanPort, protocol: 'UDP' },
      { name: 'kmc-control', containerPort: o.controlPort, protocol: 'UDP' },
      { name: 'kmc-http', containerPort: o.httpPort, protocol: 'TCP' },
    ],
    // /readyz turns 200 once vx0, its routes and the first peer resolution exist; for a native
    // sidecar the kubelet starts the app containers only after this probe succeeded.
    startupProbe: { httpGet: { path: '/readyz', port: 'kmc-http' }, periodSeconds: 1, failureThreshold: 120 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'kmc-http' }, periodSeconds: 10, failureThreshold: 3 },
    resources: resources(),
    securityContext: securityContext(),
    volumeMounts: keyMount(),
  };
  return c;
}

/** Legacy form: creates vx0 and routes before the app starts, then exits (`--setup-only`). */
export function setupContainer(app: string, o: AgentOptions): IContainer {
  return {
    name: SETUP_NAME,
    image: o.image,
    args: ['agent', '--setup-only'],
    env: agentEnv(app, o),
    resources: resources(),
    securityContext: securityContext(),
    volumeMounts: keyMount(),
  };
}

export function keyVolume(app: string): IVolume {
  return { name: KEY_VOLUME, secret: { secretName: secretName(app), defaultMode: 0o400 } };
}

function generatedMeta(app: string, name: string, namespace: string | undefined, forWhat: string): IService['metadata'] {
  return {
    name,
    ...(namespace ? { namespace } : {}),
    labels: { [MANAGED_BY.key]: MANAGED_BY.value, [MEMBER_LABEL]: app },
    annotations: { [GENERATED_FOR_ANNOTATION]: forWhat },
  };
}

/**
 * The dedicated headless Service whose A records are the members. publishNotReadyAddresses lets
 * a starting pod's agent find its peers before its own readiness (the startup probe waits for
 * that), and it never carries multicast itself: it only answers DNS.
 */
export function headlessService(app: string, namespace: string | undefined, forWhat: string, o: AgentOptions): IService {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: generatedMeta(app, serviceName(app), namespace, forWhat),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: { [MEMBER_LABEL]: app },
      ports: [{ name: 'kmc-control', port: o.controlPort, targetPort: o.controlPort, protocol: 'UDP' }],
    },
  };
}

/**
 * Lets members reach each other's VXLAN and control ports, nothing else. NetworkPolicies are
 * additive: where none selected these pods before, this one makes their other ingress denied.
 */
export function memberPolicy(app: string, namespace: string | undefined, forWhat: string, o: AgentOptions): INetworkPolicy {
  const members = { matchLabels: { [MEMBER_LABEL]: app } };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: generatedMeta(app, policyName(app), namespace, forWhat),
    spec: {
      podSelector: members,
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [{ podSelector: members }],
          ports: [
            { protocol: 'UDP', port: o.vxlanPort },
            { protocol: 'UDP', port: o.controlPort },
          ],
        },
      ],
    },
  };
}

/** A Secret holding one random 256-bit key (hex), as the agent's --key-file expects. */
export function keySecret(app: string, namespace: string | undefined, forWhat: string, key = randomBytes(32).toString('hex')): ISecret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: generatedMeta(app, secretName(app), namespace, forWhat),
    type: 'Opaque',
    data: { key: Buffer.from(`${key}\n`).toString('base64') },
  };
}
