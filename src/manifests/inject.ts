/**
 * `kmcast inject`: adds the kmcast agent to every pod template of a multi-document YAML stream
 * and emits the dedicated headless Service, the members' NetworkPolicy and the key Secret.
 * Pure: documents in, documents and a report out. The pod-template part (`injectTemplate`) works
 * through the Editor interface and is shared with the admission webhook.
 */
import type { Document } from 'yaml';
import { InputError } from '../errors.js';
import { VERSION } from '../version.js';
import { JsonEditor, YamlEditor } from './editor.js';
import type { Editor, Path } from './editor.js';
import {
  agentContainer,
  GENERATED_FOR_ANNOTATION,
  headlessService,
  KEY_VOLUME,
  keySecret,
  keyVolume,
  MANAGED_BY,
  MEMBER_LABEL,
  memberPolicy,
  policyName,
  secretName,
  serviceName,
  SETUP_NAME,
  setupContainer,
  SIDECAR_NAME,
  STATUS_ANNOTATION,
} from './sidecar.js';
import type { AgentOptions } from './sidecar.js';
import { lineOf, newDoc } from './yamlio.js';
import { injectNodeTemplate, nodeReport, nodeService, restrictedReport } from './node-inject.js';
import { appName, InjectRefusal, names, parseStatus, removeNamed } from './inject-common.js';
import type { InjectStatus, Meta, TemplateContext } from './inject-common.js';
export { appName, InjectRefusal, names, parseStatus, removeNamed } from './inject-common.js';
export type { InjectStatus, TemplateContext } from './inject-common.js';
import type { SourceDoc } from './yamlio.js';

export interface InjectOptions extends AgentOptions {
  /** Overrides the application name (Service `<name>-kmcast`); only sensible for one workload. */
  readonly name?: string;
  /** Emit a Secret with a random key (kept as it is when the input already has one). */
  readonly createSecret: boolean;
  /**
   * Emit the members' NetworkPolicy: always (true), never (false), or 'auto': only for pods that a
   * NetworkPolicy in the input already selects for ingress. Where no policy selected the pods, an
   * added one would deny all their other ingress (NetworkPolicies add up), breaking the app.
   */
  readonly networkPolicy: boolean | 'auto';
  /** Turn skipped objects (hostNetwork pods, ...) into errors. */
  readonly strict: boolean;
}

/** Where each kind keeps its pod template (an object with `metadata` and `spec`). */
export const TEMPLATE_PATHS: Readonly<Record<string, Path>> = {
  Pod: [],
  PodTemplate: ['template'],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/**
 * Kinds of the built-in API groups (enough to tell a typo such as `Deploymnet` from a custom
 * resource, which is passed through untouched).
 */
const BUILTIN_KINDS: Readonly<Record<string, readonly string[]>> = {
  v1: [
    'Pod',
    'PodTemplate',
    'ReplicationController',
    'Service',
    'ConfigMap',
    'Secret',
    'Namespace',
    'ServiceAccount',
    'PersistentVolume',
    'PersistentVolumeClaim',
    'Endpoints',
    'LimitRange',
    'ResourceQuota',
    'Node',
    'Event',
    'List',
    'Binding',
    'ComponentStatus',
  ],
  'apps/v1': ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ControllerRevision'],
  'batch/v1': ['Job', 'CronJob'],
  'networking.k8s.io/v1': ['NetworkPolicy', 'Ingress', 'IngressClass', 'IPAddress', 'ServiceCIDR'],
  'policy/v1': ['PodDisruptionBudget'],
  'rbac.authorization.k8s.io/v1': ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'],
  'autoscaling/v1': ['HorizontalPodAutoscaler'],
  'autoscaling/v2': ['HorizontalPodAutoscaler'],
  'admissionregistration.k8s.io/v1': ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'],
  'storage.k8s.io/v1': ['StorageClass', 'CSIDriver', 'CSINode', 'VolumeAttachment', 'CSIStorageCapacity'],
  'scheduling.k8s.io/v1': ['PriorityClass'],
  'discovery.k8s.io/v1': ['EndpointSlice'],
  'apiextensions.k8s.io/v1': ['CustomResourceDefinition'],
  'coordination.k8s.io/v1': ['Lease'],
  'node.k8s.io/v1': ['RuntimeClass'],
  'certificates.k8s.io/v1': ['CertificateSigningRequest'],
};

interface InputPolicy {
  readonly id: string;
  readonly namespace: string | undefined;
  readonly podSelector: unknown;
}

/** The NetworkPolicies of the input (Lists unpacked) that restrict ingress. */
function collectPolicies(srcs: readonly SourceDoc[]): InputPolicy[] {
  const out: InputPolicy[] = [];
  const visit = (obj: unknown): void => {
    if (!isObj(obj)) return;
    if (Array.isArray(obj.items) && typeof obj.kind === 'string' && obj.kind.endsWith('List')) {
      obj.items.forEach(visit);
      return;
    }
    if (obj.kind !== 'NetworkPolicy' || isGenerated(obj)) return;
    const spec = isObj(obj.spec) ? obj.spec : {};
    const types = Array.isArray(spec.policyTypes) ? spec.policyTypes : undefined;
    // Without policyTypes a policy always restricts ingress (egress only when it has egress rules).
    if (types !== undefined && !types.includes('Ingress')) return;
    const meta = (obj.metadata ?? {}) as Meta;
    out.push({ id: `NetworkPolicy/${meta.name ?? '(unnamed)'}`, namespace: meta.namespace, podSelector: spec.podSelector });
  };
  for (const src of srcs) visit(src.doc.toJS());
  return out;
}

/** Kubernetes label selector semantics: matchLabels and matchExpressions, all must hold; {} selects all. */
export function selectorMatches(selector: unknown, labels: Record<string, unknown>): boolean {
  if (!isObj(selector)) return true;
  const ml = isObj(selector.matchLabels) ? selector.matchLabels : {};
  if (!Object.entries(ml).every(([k, v]) => labels[k] === v)) return false;
  const exprs = Array.isArray(selector.matchExpressions) ? selector.matchExpressions : [];
  return exprs.every((e) => {
    if (!isObj(e) || typeof e.key !== 'string') return false;
    const values = Array.isArray(e.values) ? e.values : [];
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    switch (e.operator) {
      case 'In':
        return has && values.includes(labels[e.key]);
      case 'NotIn':
        return !has || !values.includes(labels[e.key]);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
      default:
        return false;
    }
  });
}

/** The first input policy in the pods' namespace that selects them, or undefined. */
function selectingPolicy(policies: readonly InputPolicy[], namespace: string | undefined, labels: unknown): string | undefined {
  const l = isObj(labels) ? labels : {};
  return policies.find((p) => (p.namespace ?? '') === (namespace ?? '') && selectorMatches(p.podSelector, l))?.id;
}

/**
 * Injects the agent into the pod template at `tpl` and returns the application name. Re-injecting
 * first removes what the status annotation says an earlier run added, so it upgrades in place.
 * Throws InjectRefusal with the reason when the template cannot be injected.
 */
export function injectTemplate(ed: Editor, tpl: Path, ctx: TemplateContext, o: AgentOptions): string {
  if (o.mode === 'node') return injectNodeTemplate(ed, tpl, ctx, o);
  const metaPath = [...tpl, 'metadata'];
  const specPath = [...tpl, 'spec'];
  const meta = (ed.get(metaPath) ?? {}) as Meta;
  const spec = ed.get(specPath) as Record<string, unknown> | undefined;
  if (!spec || typeof spec !== 'object' || !Array.isArray(spec.containers) || spec.containers.length === 0) {
    throw new InjectRefusal('the pod template has no containers');
  }
  if (spec.hostNetwork === true) {
    throw new InjectRefusal(
      'hostNetwork: true: the pod shares the node network namespace, so vx0 would be created on the node; use kmcast generate --mode host-network for such apps, or drop hostNetwork',
    );
  }
  const os = (spec.nodeSelector as Record<string, unknown> | undefined)?.['kubernetes.io/os'];
  if (os === 'windows' || (spec.os as { name?: unknown } | undefined)?.name === 'windows') {
    throw new InjectRefusal('the pod runs on Windows nodes; the agent needs a Linux network namespace with VXLAN');
  }
  if (o.legacy && (ctx.kind === 'Job' || ctx.kind === 'CronJob')) {
    throw new InjectRefusal('with --legacy the agent is an ordinary container that never exits, so the Job would never complete; drop --legacy (native sidecars need Kubernetes >= 1.29)');
  }
  const app = appName(meta, ctx.workloadMeta ?? meta, ctx.name);

  const status = parseStatus(meta.annotations?.[STATUS_ANNOTATION]);
  if (status) {
    removeNamed(ed, [...specPath, 'initContainers'], status.initContainers);
    removeNamed(ed, [...specPath, 'containers'], status.containers);
    removeNamed(ed, [...specPath, 'volumes'], status.volumes);
  }
  const clash = [
    ...names(ed.get([...specPath, 'initContainers']))
      .filter((n) => n === SIDECAR_NAME || n === SETUP_NAME)
      .map((n) => `init container ${n}`),
    ...names(ed.get([...specPath, 'containers']))
      .filter((n) => n === SIDECAR_NAME || n === SETUP_NAME)
      .map((n) => `container ${n}`),
    ...names(ed.get([...specPath, 'volumes']))
      .filter((n) => n === KEY_VOLUME)
      .map((n) => `volume ${n}`),
  ];
  if (clash.length > 0) {
    throw new InjectRefusal(`${clash.join(', ')} already exists but carries no ${STATUS_ANNOTATION} annotation, so it was not added by kmcast; rename it or remove it`);
  }
  if (names(ed.get([...specPath, 'containers'])).length === 0) throw new InjectRefusal('the pod template has no containers');

  let added: InjectStatus;
  if (o.legacy) {
    ed.insert([...specPath, 'initContainers'], 0, setupContainer(app, o));
    const n = names(ed.get([...specPath, 'containers'])).length;
    ed.insert([...specPath, 'containers'], n, agentContainer(app, o, false));
    added = { version: VERSION, mode: 'legacy', initContainers: [SETUP_NAME], containers: [SIDECAR_NAME], volumes: [KEY_VOLUME] };
  } else {
    // First, so vx0 exists before the user's own init containers run, too.
    ed.insert([...specPath, 'initContainers'], 0, agentContainer(app, o, true));
    added = { version: VERSION, mode: 'native', initContainers: [SIDECAR_NAME], containers: [], volumes: [KEY_VOLUME] };
  }
  ed.insert([...specPath, 'volumes'], names(ed.get([...specPath, 'volumes'])).length, keyVolume(app));
  ed.set([...metaPath, 'labels', MEMBER_LABEL], app);
  ed.set([...metaPath, 'annotations', STATUS_ANNOTATION], JSON.stringify(added));
  return app;
}

/** Injects a pod (a plain object, as the webhook receives it) and returns the patched copy. */
export function injectPod(pod: Record<string, unknown>, o: AgentOptions, name?: string): { pod: Record<string, unknown>; app: string } {
  const copy = structuredClone(pod);
  const ed = new JsonEditor(copy);
  const app = injectTemplate(ed, [], { kind: 'Pod', workloadMeta: copy.metadata as Meta | undefined, ...(name ? { name } : {}) }, o);
  return { pod: copy, app };
}

export interface InjectResult {
  readonly docs: Document[];
  /** Human report lines for stderr, after the YAML. */
  readonly report: string[];
  /** Objects that were injected, as `Kind/name`. */
  readonly injected: string[];
  readonly skipped: string[];
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function isGenerated(obj: Record<string, unknown>): boolean {
  const meta = obj.metadata as Meta | undefined;
  return meta?.labels?.[MANAGED_BY.key] === MANAGED_BY.value && typeof meta.annotations?.[GENERATED_FOR_ANNOTATION] === 'string';
}

function describe(obj: Record<string, unknown>): string {
  const meta = obj.metadata as Meta | undefined;
  return `${String(obj.kind)}/${meta?.name ?? meta?.['generateName' as keyof Meta] ?? '(unnamed)'}`;
}

/**
 * Injects every workload of the given documents. Generated objects of an earlier run in the input
 * are dropped and re-emitted (a generated Secret is kept, so its key survives re-injection).
 */
export function injectDocs(srcs: readonly SourceDoc[], o: InjectOptions): InjectResult {
  const out: Document[] = [];
  const report: string[] = [];
  const injected: string[] = [];
  const skipped: string[] = [];
  const emitted = new Set<string>();
  // Secrets from an earlier run stay where they are; remember them so none is generated twice.
  for (const src of srcs) {
    const obj = src.doc.toJS() as unknown;
    if (isObj(obj) && isGenerated(obj) && obj.kind === 'Secret') {
      const meta = obj.metadata as Meta;
      emitted.add(`Secret/${meta.namespace ?? ''}/${meta.name ?? ''}`);
    }
  }
  let secretsMissing = false;
  let policies = 0;
  // The input's own NetworkPolicies, for networkPolicy 'auto' and for the report.
  const inputPolicies = collectPolicies(srcs);
  const unprotected: string[] = [];

  for (const src of srcs) {
    const obj = src.doc.toJS() as unknown;
    const where = (path: Path): string => `${src.file}:${lineOf(src, path)}`;
    if (!isObj(obj)) throw new InputError(`${where([])}: read object: expected a Kubernetes object (a map with apiVersion and kind)`);
    if (isGenerated(obj)) {
      // Node mode needs no key: a Secret an earlier sidecar injection generated is dropped.
      if (obj.kind === 'Secret' && o.mode !== 'node') out.push(src.doc);
      continue;
    }
    const ed = new YamlEditor(src.doc);
    const generated: Document[] = [];

    const one = (base: Path, item: Record<string, unknown>): void => {
      const kind = item.kind;
      const apiVersion = item.apiVersion;
      if (typeof kind !== 'string' || kind === '' || typeof apiVersion !== 'string' || apiVersion === '') {
        throw new InputError(`${where(base)}: read object: missing apiVersion or kind; every document must be a Kubernetes object`);
      }
      if (Array.isArray(item.items) && kind.endsWith('List')) {
        item.items.forEach((sub, i) => {
          if (!isObj(sub)) throw new InputError(`${where([...base, 'items', i])}: read List item ${i}: expected an object`);
          if (isGenerated(sub)) return;
          one([...base, 'items', i], sub);
        });
        return;
      }
      const tplRel = TEMPLATE_PATHS[kind];
      const known = BUILTIN_KINDS[apiVersion];
      if (!tplRel) {
        if (known && !known.includes(kind)) {
          throw new InputError(`${where([...base, 'kind'])}: unknown kind "${kind}" in ${apiVersion}; check the spelling (kinds with a pod template: ${Object.keys(TEMPLATE_PATHS).join(', ')})`);
        }
        if (!known) report.push(`note: ${describe(item)} (${apiVersion}) is not a built-in kind; passed through unchanged`);
        return;
      }
      const tpl = [...base, ...tplRel];
      const workloadMeta = item.metadata as Meta | undefined;
      try {
        const app = injectTemplate(ed, tpl, { kind, ...(workloadMeta ? { workloadMeta } : {}), ...(o.name ? { name: o.name } : {}) }, o);
        injected.push(describe(item));
        const ns = workloadMeta?.namespace;
        const forWhat = describe(item);
        const made: string[] = [];
        const add = (kindName: string, build: () => object, comment: string): void => {
          const key = `${kindName.split('/')[0]}/${ns ?? ''}/${kindName.split('/')[1]}`;
          if (emitted.has(key)) return;
          emitted.add(key);
          generated.push(newDoc(build(), comment));
          made.push(kindName);
        };
        if (o.mode === 'node') {
          add(
            `Service/${serviceName(app)}`,
            () => nodeService(app, ns, forWhat),
            ` Generated by kmcast inject --mode node for ${forWhat}: the domain's headless Service. The kmcast-node\n agents resolve its A records (publishNotReadyAddresses: pods waiting in kmcast-wait are listed) to\n find the member pods on their node. It carries no multicast.`,
          );
          report.push(...nodeReport(forWhat, app, ns, o, made, restrictedReport(ed, tpl)));
          return;
        }
        add(
          `Service/${serviceName(app)}`,
          () => headlessService(app, ns, forWhat, o),
          ` Generated by kmcast inject for ${forWhat}: the members' headless Service. Its DNS A records are the\n peers of the agent (publishNotReadyAddresses so starting pods find each other). It carries no multicast.`,
        );
        const selecting = selectingPolicy(inputPolicies, ns, ed.get([...tpl, 'metadata', 'labels']));
        const emitPolicy = o.networkPolicy === 'auto' ? selecting !== undefined : o.networkPolicy;
        if (emitPolicy && selecting !== undefined && o.networkPolicy === 'auto') {
          report.push(`${forWhat}: NetworkPolicy/${policyName(app)} emitted because ${selecting} already selects these pods: without it the members could not reach each other's kmcast ports`);
        } else if (!emitPolicy && selecting !== undefined) {
          report.push(
            `warning: ${forWhat}: its pods are selected by ${selecting}; allow UDP ${o.vxlanPort} and ${o.controlPort} between the members, or the overlay stays empty (drop --no-network-policy to emit that policy)`,
          );
        } else if (!emitPolicy) unprotected.push(forWhat);
        if (emitPolicy) {
          if (o.networkPolicy === true) policies++;
          add(
            `NetworkPolicy/${policyName(app)}`,
            () => memberPolicy(app, ns, forWhat, o),
            ` Generated by kmcast inject for ${forWhat}: members may reach each other's VXLAN (UDP ${o.vxlanPort}) and\n control (UDP ${o.controlPort}) ports; nothing else is opened. Policies add up: if none selected these pods\n before, their other ingress is now denied, so add policies for the app's own ports.`,
          );
        }
        if (o.createSecret) {
          add(
            `Secret/${secretName(app)}`,
            () => keySecret(app, ns, forWhat),
            ` Generated by kmcast inject for ${forWhat}: the members' shared key (HMAC of control messages).\n Re-injecting keeps this Secret; to rotate, put the new key on the first line and keep the old one below.`,
          );
        } else if (!emitted.has(`Secret/${ns ?? ''}/${secretName(app)}`)) {
          // Noted once per Secret, however many workloads share it.
          emitted.add(`Secret/${ns ?? ''}/${secretName(app)}`);
          secretsMissing = true;
          report.push(
            `${forWhat}: needs Secret ${secretName(app)}; create it with: kubectl create secret generic ${secretName(app)} --from-literal=key=$(openssl rand -hex 32)  (or rerun with --create-secret)`,
          );
        }
        report.push(`${forWhat}: added ${o.legacy ? 'init container kmcast-setup and sidecar kmcast (legacy)' : 'native sidecar kmcast'}${made.length ? `; emitted ${made.join(', ')}` : ''}`);
      } catch (err) {
        if (!(err instanceof InjectRefusal)) throw err;
        if (o.strict) throw new InputError(`${where(tpl)}: inject ${describe(item)}: ${err.message}`);
        skipped.push(describe(item));
        report.push(`warning: skipped ${describe(item)} (${where(tpl)}): ${err.message}`);
      }
    };

    one([], obj);
    out.push(src.doc, ...generated);
  }
  if (policies > 0) report.push('note: the NetworkPolicy opens only the kmcast ports; if no policy selected these pods before, their other ingress is now denied');
  if (unprotected.length > 0 && o.networkPolicy === 'auto') {
    report.push(
      `note: no NetworkPolicy emitted for ${unprotected.join(', ')} (none in the input selects their pods, and adding one would deny their other ingress). If the namespace has a default-deny ingress policy, rerun with --network-policy, or allow UDP ${o.vxlanPort} and ${o.controlPort} between the members`,
    );
  }
  if (secretsMissing) report.push('note: pods stay in ContainerCreating until the key Secret exists');
  // Sidecar mode only: in node mode the node agent delivers out of the pod's own veth, so a socket
  // bound to eth0 hears everything and the advice would be wrong.
  if (injected.length && o.mode !== 'node')
    report.push(
      'note: apps that join or send on eth0 work; a socket bound to eth0 (SO_BINDTODEVICE, keepalived interface eth0) hears nothing from the overlay: point it at vx0 or use node mode (kmcast doctor lists such sockets)',
    );
  return { docs: out, report, injected, skipped };
}
