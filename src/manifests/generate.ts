/**
 * `kmcast generate`: a complete, commented manifest set for a multicast application in one of
 * three modes (DESIGN section 6). Pure: options in, YAML text out. The overlay mode reuses
 * inject, so a generated app and an injected app are the same.
 */
import { ConfigError } from '../errors.js';
import { classifyGroup, parseIPv4 } from './groups.js';
import { injectDocs } from './inject.js';
import { generateNode } from './node-generate.js';
import { deployment, doc, header } from './generate-common.js';
import type { GenerateOptions, GenerateResult } from './generate-common.js';
export { MODES, deployment, doc, header } from './generate-common.js';
export type { GenerateOptions, GenerateResult, Mode } from './generate-common.js';
import { parseYamlDocs, stringifyDocs } from './yamlio.js';

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

function verify(o: GenerateOptions): void {
  if (!DNS_LABEL.test(o.name) || o.name.length > 52) {
    throw new ConfigError(`--name: invalid name "${o.name}" (lower-case letters, digits and '-', starting with a letter, at most 52 characters)`);
  }
  if (o.groups.length === 0) throw new ConfigError('--group: at least one group is needed, e.g. --group 239.1.2.3:5000');
  for (const g of o.groups) {
    const cls = classifyGroup(parseIPv4(g.address)!);
    if (cls === 'link-local') throw new ConfigError(`--group: ${g.address} is in 224.0.0.0/24, reserved for local network control; use 239.x.y.z`);
    if (cls === 'ssm') throw new ConfigError(`--group: ${g.address} is Source-Specific Multicast (232/8) and needs a source; use 239.x.y.z`);
  }
  const [net, bits] = o.subnet.split('/');
  if (parseIPv4(net ?? '') === undefined || !/^\d+$/.test(bits ?? '') || Number(bits) < 8 || Number(bits) > 30) {
    throw new ConfigError(`--subnet: invalid CIDR "${o.subnet}" (e.g. 10.201.0.0/24)`);
  }
  if (!/^[\w.-]{1,15}$/.test(o.master)) throw new ConfigError(`--master: invalid interface name "${o.master}"`);
}

function overlay(o: GenerateOptions): GenerateResult {
  const dep = doc(
    deployment(o, {}),
    header(
      o,
      `The app joins its groups on its own socket (IP_ADD_MEMBERSHIP, no interface named); the
kmcast agent beside it routes 224.0.0.0/4 into its VXLAN overlay vx0 and replicates each group to
the member pods that joined it, on any CNI. Apply with: kubectl apply -f <this file>
MULTICAST_GROUPS is for the app; name the variable whatever the app reads.`,
    ),
  );
  const srcs = parseYamlDocs(stringifyDocs([dep]), 'generated');
  const r = injectDocs(srcs, { ...o.agent, createSecret: o.createSecret, networkPolicy: true, strict: true });
  return { yaml: stringifyDocs(r.docs), notes: r.report.filter((l) => !l.includes(': added ')) };
}

function hostNetwork(o: GenerateOptions): GenerateResult {
  const yaml = stringifyDocs([
    doc(
      deployment(o, { hostNetwork: true }),
      header(
        o,
        `hostNetwork: the pods use the nodes' own network, so multicast goes wherever the node
network carries it (an on-premises L2 segment with IGMP snooping and a querier; most cloud VPCs
drop multicast). No kmcast agent is needed, and this is what is given up:
- isolation: the pod sees every node interface, can bind any node port and sniff node traffic;
  NetworkPolicy does not apply to it with most CNIs;
- ports: two pods on one node collide, hence the required anti-affinity (one pod per node, so
  replicas beyond the node count stay Pending) and hostPort on every group port;
- DNS: ClusterFirstWithHostNet, or cluster names do not resolve from the node's resolver.
Prefer --mode overlay unless the node network already carries multicast.`,
      ),
    ),
  ]);
  return { yaml, notes: ['host-network: multicast crosses nodes only where the node network carries it'] };
}

function multus(o: GenerateOptions): GenerateResult {
  const nadName = `${o.name}-mcast`;
  const config = {
    cniVersion: '0.3.1',
    name: nadName,
    type: o.multusType,
    master: o.master,
    mode: o.multusType === 'macvlan' ? 'bridge' : 'l2',
    ipam: { type: 'whereabouts', range: o.subnet, routes: [{ dst: '224.0.0.0/4' }] },
  };
  const nad = doc(
    {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: nadName, ...(o.namespace ? { namespace: o.namespace } : {}) },
      spec: { config: JSON.stringify(config, null, 2) },
    },
    header(
      o,
      `multus: a second interface (net1) on the node network ${o.master}, which must exist on every node and
be an L2 segment that carries multicast. ${
        o.multusType === 'macvlan'
          ? 'macvlan in bridge mode: pods on one node reach each other; the pod cannot reach its own node\nthrough net1 (a macvlan property).'
          : "ipvlan in L2 mode: pods share the parent's MAC (fine with port security); L3 modes carry no\nmulticast."
      }
The 224.0.0.0/4 route sends group traffic out of net1 instead of the cluster network (eth0).
IPAM: whereabouts hands out ${o.subnet} cluster-wide (host-local would repeat addresses per node).
Needs Multus and whereabouts installed.`,
    ),
  );
  const dep = doc(
    deployment(o, {
      annotations: { 'k8s.v1.cni.cncf.io/networks': JSON.stringify([{ name: nadName, interface: 'net1' }]) },
      env: [{ name: 'MULTICAST_INTERFACE', value: 'net1' }],
    }),
    ` The app: joins and sends on net1 (the route does it; MULTICAST_INTERFACE is for apps that ask).`,
  );
  return { yaml: stringifyDocs([nad, dep]), notes: [`multus: needs Multus and whereabouts, and ${o.master} on every node`] };
}

/** The manifests for one application. */
export function generate(o: GenerateOptions): GenerateResult {
  verify(o);
  switch (o.mode) {
    case 'overlay':
      return overlay(o);
    case 'host-network':
      return hostNetwork(o);
    case 'multus':
      return multus(o);
    case 'node':
      return generateNode(o);
  }
}
