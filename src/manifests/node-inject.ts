/**
 * Node mode of `kmcast inject` and the webhook: the kmcast-node DaemonSet carries multicast for
 * the pods from the node's side, so a member pod gets only the membership label, the domain's
 * headless Service (its DNS A records are the members the node agents serve) and the unprivileged
 * `kmcast-wait` init container, which holds the app back until the node agent reports the pod
 * programmed. No sidecar, no capability, no Secret: the result passes Pod Security `restricted`
 * as far as kmcast's additions go (the user's own containers are checked and reported).
 *
 * Pure builders and the template editing; inject.ts calls in here when `mode` is `node`.
 */
import type { IContainer, IService } from 'kubernetes-models/v1';
import { NODE_HTTP_PORT } from '../node/api.js';
import { VERSION } from '../version.js';
import type { Editor, Path } from './editor.js';
import { appName, InjectRefusal, names, parseStatus, removeNamed } from './inject-common.js';
import type { InjectStatus, TemplateContext } from './inject-common.js';
import { checkPodSecurity } from './pss.js';
import { GENERATED_FOR_ANNOTATION, KEY_VOLUME, MANAGED_BY, MEMBER_LABEL, serviceName, SETUP_NAME, SIDECAR_NAME, STATUS_ANNOTATION } from './sidecar.js';
import type { AgentOptions } from './sidecar.js';

export const WAIT_NAME = 'kmcast-wait';
/** The uid/gid of the wait container (the distroless "nonroot" convention). */
export const WAIT_UID = 65532;
/** Per-pod choice of the webhook: `node` or `sidecar`, overriding the webhook's --mode. */
export const MODE_ANNOTATION = 'kmcast.io/mode';
/** The namespace, DaemonSet and ConfigMap of deploy/node. */
export const NODE_NAMESPACE = 'kmcast-node';
export const NODE_DAEMONSET = 'kmcast-node';
export const NODE_CONFIGMAP = 'kmcast-node';
/** The ConfigMap key the DaemonSet reads as KMCAST_SERVICE (comma-separated domains). */
export const NODE_SERVICES_KEY = 'services';

export type InjectMode = 'sidecar' | 'node';
export const INJECT_MODES: readonly InjectMode[] = ['sidecar', 'node'];

/** The domain's name as the node agent's --service takes it (the headless Service's FQDN). */
export function domainName(app: string, namespace: string | undefined, o: Pick<AgentOptions, 'clusterDomain'>): string {
  return `${serviceName(app)}.${namespace ?? '<namespace>'}.svc.${o.clusterDomain}`;
}

/**
 * The init container that waits for the node agent. It reads its node and pod address from the
 * downward API and holds no privilege at all: the restricted profile's every container field.
 */
export function waitContainer(o: Pick<AgentOptions, 'image'> & { readonly nodeHttpPort?: number }): IContainer {
  const port = o.nodeHttpPort ?? NODE_HTTP_PORT;
  return {
    name: WAIT_NAME,
    image: o.image,
    args: ['wait'],
    env: [
      { name: 'KMCAST_NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
      { name: 'KMCAST_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      ...(port !== NODE_HTTP_PORT ? [{ name: 'KMCAST_PORT', value: String(port) }] : []),
    ],
    // Measured: about 60 MB peak RSS while polling (Node.js 20 with the image's V8 flags); the CPU
    // limit leaves Node.js's start-up (about 0.3 CPU-seconds) a second or two.
    resources: { requests: { cpu: '5m', memory: '64Mi' }, limits: { cpu: '250m', memory: '128Mi' } },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: WAIT_UID,
      runAsGroup: WAIT_UID,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

/**
 * The domain's headless Service: a selector and nothing else. Its A records (ready or not, so a
 * pod still in its wait container is listed) are what the node agents' --service resolves. No
 * ports: a headless Service needs none, and no pod-side port carries anything.
 */
export function nodeService(app: string, namespace: string | undefined, forWhat: string): IService {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: serviceName(app),
      ...(namespace ? { namespace } : {}),
      labels: { [MANAGED_BY.key]: MANAGED_BY.value, [MEMBER_LABEL]: app },
      annotations: { [GENERATED_FOR_ANNOTATION]: forWhat, [MODE_ANNOTATION]: 'node' },
    },
    spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: { [MEMBER_LABEL]: app } },
  };
}

interface Meta {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/**
 * Node-mode injection of the pod template at `tpl`; returns the application name. An earlier
 * injection (either mode) is removed first through its status annotation: re-injecting is
 * idempotent and a sidecar-injected template loses its sidecar, setup container and key volume.
 */
export function injectNodeTemplate(ed: Editor, tpl: Path, ctx: TemplateContext, o: AgentOptions): string {
  const metaPath = [...tpl, 'metadata'];
  const specPath = [...tpl, 'spec'];
  const meta = (ed.get(metaPath) ?? {}) as Meta;
  const spec = ed.get(specPath) as Record<string, unknown> | undefined;
  if (!spec || typeof spec !== 'object' || !Array.isArray(spec.containers) || spec.containers.length === 0) {
    throw new InjectRefusal('the pod template has no containers');
  }
  if (spec.hostNetwork === true) {
    throw new InjectRefusal(
      'hostNetwork: true: the pod has no veth of its own for the node agent to capture and deliver on; use kmcast generate --mode host-network for such apps, or drop hostNetwork',
    );
  }
  const os = (spec.nodeSelector as Record<string, unknown> | undefined)?.['kubernetes.io/os'];
  if (os === 'windows' || (spec.os as { name?: unknown } | undefined)?.name === 'windows') {
    throw new InjectRefusal('the pod runs on Windows nodes; the node agent serves Linux nodes only');
  }
  const app = appName(meta, ctx.workloadMeta ?? meta, ctx.name);

  const status = parseStatus(meta.annotations?.[STATUS_ANNOTATION]);
  if (status) {
    removeNamed(ed, [...specPath, 'initContainers'], status.initContainers);
    removeNamed(ed, [...specPath, 'containers'], status.containers);
    removeNamed(ed, [...specPath, 'volumes'], status.volumes);
    if ((ed.get([...specPath, 'volumes']) as unknown[] | undefined)?.length === 0) ed.delete([...specPath, 'volumes']);
  }
  const ours = [WAIT_NAME, SIDECAR_NAME, SETUP_NAME];
  const clash = [
    ...names(ed.get([...specPath, 'initContainers']))
      .filter((n) => ours.includes(n))
      .map((n) => `init container ${n}`),
    ...names(ed.get([...specPath, 'containers']))
      .filter((n) => ours.includes(n))
      .map((n) => `container ${n}`),
    ...names(ed.get([...specPath, 'volumes']))
      .filter((n) => n === KEY_VOLUME)
      .map((n) => `volume ${n}`),
  ];
  if (clash.length > 0) {
    throw new InjectRefusal(`${clash.join(', ')} already exists but carries no ${STATUS_ANNOTATION} annotation, so it was not added by kmcast; rename it or remove it`);
  }
  // First, so the user's own init containers already see working multicast.
  ed.insert([...specPath, 'initContainers'], 0, waitContainer(o));
  const added: InjectStatus = { version: VERSION, mode: 'node', initContainers: [WAIT_NAME], containers: [], volumes: [] };
  ed.set([...metaPath, 'labels', MEMBER_LABEL], app);
  ed.set([...metaPath, 'annotations', STATUS_ANNOTATION], JSON.stringify(added));
  return app;
}

/** The pod at `tpl` against `restricted`: the violations as report text (empty: it passes). */
export function restrictedReport(ed: Editor, tpl: Path): string[] {
  const vs = checkPodSecurity({ metadata: ed.get([...tpl, 'metadata']), spec: ed.get([...tpl, 'spec']) }, 'restricted');
  return vs.map((v) => `${v.path} (${v.control}): ${v.message}`);
}

/** The report lines for one node-mode injected workload. */
export function nodeReport(forWhat: string, app: string, namespace: string | undefined, o: AgentOptions, made: readonly string[], violations: readonly string[]): string[] {
  const lines = [
    `${forWhat}: added label ${MEMBER_LABEL}=${app} and init container ${WAIT_NAME} (node mode: no sidecar, no capability, no Secret)${made.length ? `; emitted ${made.join(', ')}` : ''}`,
  ];
  lines.push(
    `${forWhat}: add the domain ${domainName(app, namespace, o)} to the ${NODE_DAEMONSET} DaemonSet: the "${NODE_SERVICES_KEY}" key (comma-separated) of ConfigMap ${NODE_NAMESPACE}/${NODE_CONFIGMAP}, then kubectl -n ${NODE_NAMESPACE} rollout restart daemonset/${NODE_DAEMONSET}; until then ${WAIT_NAME} waits with "not_member"`,
  );
  if (violations.length === 0) {
    lines.push(`${forWhat}: the pods pass Pod Security "restricted" (pod-security.kubernetes.io/enforce: restricted admits them)`);
  } else {
    lines.push(`${forWhat}: kmcast added nothing that Pod Security "restricted" forbids, but the app's own spec does not pass it: ${violations.join('; ')}`);
  }
  return lines;
}
