/**
 * `kmcast generate --mode node`: the app for the kmcast-node DaemonSet. The pods hold no
 * privilege (Pod Security `restricted`, and the namespace enforces it); inject --mode node adds
 * the label, the domain's Service and the wait init container, as it does for any other app.
 */
import { ConfigError } from '../errors.js';
import { deployment, doc, header } from './generate-common.js';
import type { GenerateOptions, GenerateResult } from './generate-common.js';
import { injectDocs } from './inject.js';
import { domainName, NODE_CONFIGMAP, NODE_DAEMONSET, NODE_NAMESPACE, NODE_SERVICES_KEY, WAIT_NAME } from './node-inject.js';
import { parseYamlDocs, stringifyDocs } from './yamlio.js';

export function generateNode(o: GenerateOptions): GenerateResult {
  if (o.createSecret) throw new ConfigError('--create-secret: only for --mode overlay (in node mode the pods hold no key)');
  if (o.agent.legacy) throw new ConfigError('--legacy: only for --mode overlay (node mode adds an ordinary init container)');
  const dep = deployment(o, {});
  const spec = dep.spec!.template.spec!;
  // Restricted: non-root, RuntimeDefault seccomp, no escalation, every capability dropped.
  spec.securityContext = { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };
  spec.containers[0]!.securityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };
  const domain = domainName(o.name, o.namespace, o.agent);
  const docs = [];
  if (o.namespace) {
    docs.push(
      doc(
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: o.namespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
        header(
          o,
          `node mode: the kmcast-node DaemonSet (deploy/node, once per cluster) carries multicast and
broadcast from the node's side of each pod's veth, so the pods hold no capability, run no sidecar
and receive on their own eth0: apps that join or send on eth0 work unchanged.
This namespace enforces Pod Security "restricted"; every pod below passes it.
Before applying: add ${domain} to the "${NODE_SERVICES_KEY}" key of
ConfigMap ${NODE_NAMESPACE}/${NODE_CONFIGMAP} and restart the agents:
  kubectl -n ${NODE_NAMESPACE} edit configmap ${NODE_CONFIGMAP}
  kubectl -n ${NODE_NAMESPACE} rollout restart daemonset/${NODE_DAEMONSET}
Until then the pods wait in their ${WAIT_NAME} init container ("not_member").`,
        ),
      ),
    );
  }
  docs.push(
    doc(
      dep,
      o.namespace
        ? ` The app: non-root (the image needs a numeric USER, or set runAsUser), nothing added; the
 ${WAIT_NAME} init container holds it until the node agent programmed the pod.`
        : header(
            o,
            `node mode: the kmcast-node DaemonSet (deploy/node, once per cluster) carries multicast and
broadcast from the node's side of each pod's veth, so the pods hold no capability, run no sidecar
and receive on their own eth0: apps that join or send on eth0 work unchanged.
The pods pass Pod Security "restricted": label their namespace with
pod-security.kubernetes.io/enforce=restricted. The image needs a numeric non-root USER (or set runAsUser).
Before applying: add ${domain} to the "${NODE_SERVICES_KEY}" key of
ConfigMap ${NODE_NAMESPACE}/${NODE_CONFIGMAP} and restart the agents:
  kubectl -n ${NODE_NAMESPACE} rollout restart daemonset/${NODE_DAEMONSET}
Until then the pods wait in their ${WAIT_NAME} init container ("not_member").`,
          ),
    ),
  );
  const srcs = parseYamlDocs(stringifyDocs(docs), 'generated');
  const r = injectDocs(srcs, { ...o.agent, mode: 'node', createSecret: false, networkPolicy: false, strict: true });
  return { yaml: stringifyDocs(r.docs), notes: r.report.filter((l) => !l.includes(': added ')) };
}
