import type { AgentStatus } from '../../src/sidecar/status-types.js';

/** An agent's /status with no peers and nothing dropped; tests override what they look at. */
export function agentStatusFixture(over: Partial<AgentStatus> = {}): AgentStatus {
  return {
    version: '0.1.0',
    podIp: '10.244.1.11',
    underlay: 'eth0',
    device: 'vx0',
    vni: 4242,
    vxlanPort: 7471,
    controlPort: 7470,
    addressing: 'pod-ip',
    unregistered: 'drop',
    replication: 'selective',
    ready: true,
    authenticated: true,
    peers: [],
    localGroups: [],
    entries: { fdb: 0, mdb: 0, routes: 2 },
    allowList: { installed: true, peers: 0 },
    drops: { unregistered: 0, control: {} },
    ...over,
  };
}
