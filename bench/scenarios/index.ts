/** The scenario list, in run order. Each scenario builds and removes its own namespaces. */
import type { BenchContext } from '../lib/context.js';
import { M } from '../lib/context.js';
import type { ResultRow, ScenarioResult } from '../lib/pure.js';
import { baseline } from './baseline.js';
import { controlPlane, fanOut, labIds, oneToThree, resources } from './kmcast.js';
import { gatewayIn, gatewayLabIds } from './gateway.js';
import { removeLab } from '../lib/lab.js';
import { nodeFanOut, nodeLabIds, nodeOneToThree, nodeOneToThreeV6, nodeResources } from './node.js';
import { nodeScale, nodeScaleLabIds } from './node-scale.js';

export interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly ratioOf?: ScenarioResult['ratioOf'];
  run(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }>;
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'baseline',
    title: 'physical limit: 1 sender -> 3 receivers on one native Linux bridge (no overlay)',
    ratioOf: { metric: M.maxPps, baseline: 'native 64B' },
    run: baseline,
  },
  {
    name: 'kmcast-1to3',
    title: 'kmcast: 1 sender -> 3 receivers on other nodes, selective and flood',
    ratioOf: {
      metric: M.maxPps,
      baseline: 'native 64B',
      baselineScenario: 'baseline',
      baselineFor: {
        'kmcast selective 64B': 'native 64B',
        'kmcast flood 64B': 'native 64B',
        'kmcast selective 1200B': 'native 1200B',
        'kmcast flood 1200B': 'native 1200B',
      },
    },
    run: oneToThree,
  },
  {
    name: 'fanout',
    title: 'fan-out cost: 1 receiver among 2, 5, 10, 20 members, selective vs flood',
    run: fanOut,
  },
  {
    name: 'control',
    title: 'control plane: agent start to first delivery, join latency, dead-peer detection',
    run: controlPlane,
  },
  {
    name: 'resources',
    title: 'agent resources: RSS and CPU idle and with 50 peers',
    run: resources,
  },
  {
    name: 'node-1to3',
    title: 'node mode: 1 sender -> 3 receivers on other nodes, one agent per node, none in the pods, against the same path built by hand',
    ratioOf: {
      metric: M.maxPps,
      baseline: 'native 64B',
      baselineScenario: 'baseline',
      // The native bridge has no 1472 B row: those ratios are only against the hand-built path.
      baselineFor: {
        'node mode 64B': 'native 64B',
        'node mode 1200B': 'native 1200B',
        'node mode 1472B': 'native 1472B',
        'hand-built node path 64B': 'native 64B',
        'hand-built node path 1200B': 'native 1200B',
        'hand-built node path 1472B': 'native 1472B',
      },
    },
    run: nodeOneToThree,
  },
  {
    name: 'node-1to3-ipv6',
    title: 'node mode over IPv6 against IPv4: 1 sender -> 3 receivers on other nodes, one dual-stack lab',
    run: nodeOneToThreeV6,
  },
  {
    name: 'node-fanout',
    title: 'node mode vs sidecar selective: 1 sender -> 40 receivers, 10 per node on 4 nodes',
    run: nodeFanOut,
  },
  {
    name: 'node-resources',
    title: 'node agent resources: RSS and CPU with 50 local member pods',
    run: nodeResources,
  },
  {
    name: 'node-scale',
    title: 'node agent at 110 member pods: memory of its process tree, join latency, spawns and CPU idle; one all-nsid listener (as deployed) vs one monitor per pod (no CAP_NET_BROADCAST)',
    run: nodeScale,
  },
  {
    name: 'gateway-in',
    title: "gateway inbound: LAN host -> member pod on another node, max pps against the LAN's native bridge and the same path built by hand",
    ratioOf: {
      metric: M.maxPps,
      baseline: 'native LAN 64B',
      baselineFor: {
        'native LAN 1200B': 'native LAN 1200B',
        'gateway in 64B': 'native LAN 64B',
        'gateway in 1200B': 'native LAN 1200B',
        'gateway in local 64B': 'native LAN 64B',
        'hand-built gateway in 64B': 'native LAN 64B',
        'hand-built gateway in 1200B': 'native LAN 1200B',
        'hand-built gateway in local 64B': 'native LAN 64B',
      },
    },
    run: gatewayIn,
  },
];

/** Lab ids the kmcast scenarios use, for cleanup after an interruption. */
export async function removeLabs(ctx: BenchContext): Promise<void> {
  for (const id of [...labIds(ctx), ...nodeLabIds(ctx), ...nodeScaleLabIds(ctx), ...gatewayLabIds(ctx)]) await removeLab(id).catch(() => undefined);
}
