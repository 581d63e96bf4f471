/**
 * What every `kmcast generate` mode shares: the options, the result, and the Deployment and
 * document helpers (overlay, host-network and multus in generate.ts, node in node-generate.ts).
 * Pure.
 */
import { Document } from 'yaml';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { GroupSpec } from './groups.js';
import type { AgentOptions } from './sidecar.js';

export type Mode = 'overlay' | 'host-network' | 'multus' | 'node';
export const MODES: readonly Mode[] = ['overlay', 'host-network', 'multus', 'node'];

export interface GenerateOptions {
  readonly name: string;
  readonly image: string;
  readonly groups: readonly GroupSpec[];
  readonly mode: Mode;
  readonly namespace?: string;
  readonly replicas: number;
  /** multus: the secondary interface's plugin. */
  readonly multusType: 'macvlan' | 'ipvlan';
  /** multus: the node interface the secondary network hangs off. */
  readonly master: string;
  /** multus: the address range of the secondary network (whereabouts IPAM). */
  readonly subnet: string;
  readonly createSecret: boolean;
  readonly agent: AgentOptions;
}

export interface GenerateResult {
  /** The manifests, one multi-document YAML text. */
  readonly yaml: string;
  /** What the user still has to do, for stderr. */
  readonly notes: string[];
}

export const groupList = (o: GenerateOptions): string => o.groups.map((g) => `${g.address}:${g.port}`).join(',');
export const uniquePorts = (o: GenerateOptions): number[] => [...new Set(o.groups.map((g) => g.port))];

export function deployment(o: GenerateOptions, extra: { hostNetwork?: boolean; annotations?: Record<string, string>; env?: { name: string; value: string }[] }): IDeployment {
  const labels = { app: o.name };
  const ports = uniquePorts(o).map((p, i) => ({
    name: `mcast-${i}`,
    containerPort: p,
    ...(extra.hostNetwork ? { hostPort: p } : {}),
    protocol: 'UDP' as const,
  }));
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: o.name, ...(o.namespace ? { namespace: o.namespace } : {}), labels },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels, ...(extra.annotations ? { annotations: extra.annotations } : {}) },
        spec: {
          ...(extra.hostNetwork
            ? {
                hostNetwork: true,
                dnsPolicy: 'ClusterFirstWithHostNet',
                affinity: {
                  podAntiAffinity: {
                    requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: labels } }],
                  },
                },
              }
            : {}),
          containers: [
            {
              name: o.name,
              image: o.image,
              env: [{ name: 'MULTICAST_GROUPS', value: groupList(o) }, ...(extra.env ?? [])],
              ports,
            },
          ],
        },
      },
    },
  };
}

export function doc(value: unknown, comment: string): Document {
  const d = new Document(value, { aliasDuplicateObjects: false });
  d.commentBefore = comment;
  return d;
}

export function header(o: GenerateOptions, text: string): string {
  return ` kmcast generate --mode ${o.mode}: ${o.name}, groups ${o.groups.map((g) => `${g.address}:${g.port}`).join(', ')}\n${text
    .split('\n')
    .map((l) => ` ${l}`)
    .join('\n')}`;
}
