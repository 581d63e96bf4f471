import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { evaluateNode, evaluateNodeKey, evaluateNodeLimits, evaluateOversize, gatherNodeFacts, nftProbeScript } from '../../../src/node/doctor.js';
import type { NodeDoctorDeps, NodeDoctorFacts } from '../../../src/node/doctor.js';
import type { NodeStatus } from '../../../src/node/status-types.js';

const OPTS = { statusUrl: 'http://127.0.0.1:9471' };
const ROOT_STATUS = 'Name:\tnode\nCapEff:\t000001ffffffffff\n';

function status(over: Partial<NodeStatus> = {}, members: NodeStatus['domains'][number]['localMembers'] = []): NodeStatus {
  return {
    mode: 'node',
    version: '0.1.0',
    nodeIp: '172.31.1.2',
    uplink: 'kmcup',
    vxlanPort: 7472,
    controlPort: 7473,
    ready: true,
    authenticated: true,
    unregistered: 'drop',
    domains: [
      { service: 'app.default.svc.cluster.local', vni: 100, device: 'kmcvx100', label: 'x', listed: [], localMembers: members, announced: true, groups: [], peers: [], entries: { fdb: 1, mdb: 0 } },
    ],
    ruleset: { installed: true, chains: 3 },
    allowList: { installed: true, peers: 2 },
    drops: { control: {} },
    ...over,
  };
}

function deps(runner: FakeRunner, over: Partial<NodeDoctorDeps> = {}): NodeDoctorDeps {
  return {
    runner,
    readFile: async (p) => (p === '/proc/self/status' ? ROOT_STATUS : Promise.reject(new Error('no'))),
    readdir: async () => ['cni-1', 'cni-2'],
    fetchStatus: async () => status(),
    ...over,
  };
}

const OK_FACTS: NodeDoctorFacts = { capEff: '000001ffffffffff', nftProbe: { ok: true }, netnsDir: { ok: true, entries: 2 }, agent: { ok: true, status: status() } };
const byId = (r: ReturnType<typeof evaluateNode>, id: string) => r.find((c) => c.id === id)!;

describe('node doctor', () => {
  it('checks the capture chain with nft --check only: one command, the probe script on stdin', async () => {
    const runner = new FakeRunner().on('nft --check', { code: 0 });
    const f = await gatherNodeFacts(OPTS, deps(runner));
    assert.deepEqual(runner.commands(), ['nft --check -f -']);
    assert.equal(runner.calls[0]!.input, nftProbeScript());
    assert.equal(runner.calls[0]!.netns, undefined);
    assert.deepEqual(f, { ...OK_FACTS });
  });

  it("the probe is the agent's capture rule shape: ingress at -500, the capture set, counter, dup, fwd", () => {
    assert.equal(
      nftProbeScript('t'),
      'table netdev t {\n  chain probe {\n    type filter hook ingress device "lo" priority -500; policy accept;\n    ip daddr { 224.0.0.0/4, 255.255.255.255 } counter dup to "lo" fwd to "lo"\n  }\n}\n',
    );
  });

  it('gathers failures as facts, never throws', async () => {
    const runner = new FakeRunner().on('nft --check', { code: 1, stderr: 'Error: Could not process rule: No such file or directory\n' });
    const enoent = Object.assign(new Error('nope'), { code: 'ENOENT' });
    const f = await gatherNodeFacts(
      OPTS,
      deps(runner, { readdir: async () => Promise.reject(enoent), fetchStatus: async () => Promise.reject(new Error('ECONNREFUSED')), readFile: async () => Promise.reject(new Error('x')) }),
    );
    assert.deepEqual(f, {
      capEff: null,
      nftProbe: { ok: false, error: 'Error: Could not process rule: No such file or directory' },
      netnsDir: { ok: false, error: 'ENOENT' },
      agent: { ok: false, error: 'ECONNREFUSED' },
    });
  });

  it('explains allow-list drops and groups left out of STATE', () => {
    const base = status();
    const st = status({ allowList: { installed: true, peers: 2, dropped: { not_underlay: 5, not_peer: 0 } }, domains: [{ ...base.domains[0]!, unannouncedGroups: 19_700 }] });
    const r = evaluateNode({ ...OK_FACTS, agent: { ok: true, status: st } }, OPTS);
    const c = byId(r, 'node-limits');
    assert.equal(c.status, 'WARN');
    assert.match(c.detail, /5 datagrams to UDP 7472\/7473 came from a pod or an interface other than kmcup/);
    assert.match(c.detail, /app\.default\.svc\.cluster\.local: 19700/);
    assert.doesNotMatch(c.detail, /no peer node/, 'a zero counter is not reported');
  });

  it('IPv6 underlay: a member over the carried size is named only while the agent has not given it its multicast route MTU', () => {
    const m = { podIp: 'fd00:10:244:3::11', groups: [], programmed: true, mtu: 1500 };
    const on = (members: NodeStatus['domains'][number]['localMembers']) =>
      byId(evaluateNode({ ...OK_FACTS, agent: { ok: true, status: status({ nodeIp: 'fd00:172:31:3::2', underlayMtu: 1500 }, members) } }, OPTS), 'node-limits');
    const unfixed = on([m]);
    assert.equal(unfixed.status, 'WARN');
    assert.match(unfixed.detail, /crosses only up to 1430 bytes .*fd00:10:244:3::11 \(MTU 1500\) .*has not \(yet\) set their IPv6 multicast route MTU/);
    assert.equal(on([{ ...m, multicastMtu: 1430 }]).status, 'OK', 'its route fits: nothing to say');
    assert.equal(on([{ ...m, mtu: 1430 }]).status, 'OK', 'a member at the carried size');
  });

  it('all OK on a healthy node', () => {
    const r = evaluateNode(OK_FACTS, OPTS);
    assert.deepEqual(
      r.map((c) => [c.id, c.status]),
      [
        ['node-capability', 'OK'],
        ['node-nft-netdev', 'OK'],
        ['node-netns-dir', 'OK'],
        ['node-agent', 'OK'],
        ['node-key', 'OK'],
        ['node-limits', 'OK'],
        ['node-oversize', 'OK'],
      ],
    );
    assert.match(byId(r, 'node-agent').detail, /ready, 1 domains, 0 local members, 3 chains/);
  });

  it("frames longer than a member pod's MTU warn, name the pod and its MTU, and say what to change", () => {
    const base = status();
    const d = base.domains[0]!;
    const member = { podIp: '10.244.3.11', hostVeth: 'kmcv1', groups: [], programmed: true, mtu: 1450, oversize: 7 };
    const st = { ...base, domains: [{ ...d, localMembers: [member, { ...member, podIp: '10.244.3.12', oversize: 0 }], oversize: 2 }] };
    const c = evaluateOversize(st);
    assert.equal(c.status, 'WARN');
    assert.match(c.detail, /10\.244\.3\.11 \(MTU 1450\): 7, every local member: 2$/);
    assert.match(c.fix!, /same MTU/);
    assert.equal(evaluateOversize({ ...st, domains: [{ ...d, localMembers: [{ ...member, oversize: 0 }], oversize: 0 }] }).status, 'OK');
  });

  it('each failure has a fix that names what to do', () => {
    const r = evaluateNode(
      {
        capEff: '0000000000000000',
        nftProbe: { ok: false, error: 'Error: Could not process rule: No such file or directory' },
        netnsDir: { ok: false, error: 'ENOENT' },
        agent: { ok: false, error: 'ECONNREFUSED' },
      },
      OPTS,
    );
    assert.ok(
      r.every((c) => c.status === 'FAIL' && c.fix),
      JSON.stringify(r),
    );
    assert.match(byId(r, 'node-nft-netdev').fix!, /CONFIG_NFT_FWD_NETDEV/);
    assert.match(byId(r, 'node-netns-dir').fix!, /mountPropagation: HostToContainer/);
    assert.match(byId(r, 'node-agent').fix!, /kmcast-node DaemonSet/);
    const perm = evaluateNode({ ...OK_FACTS, nftProbe: { ok: false, error: 'netlink: Error: cache initialization failed: Operation not permitted' } }, OPTS);
    assert.match(byId(perm, 'node-nft-netdev').fix!, /needs CAP_NET_ADMIN/);
    const noNft = evaluateNode({ ...OK_FACTS, nftProbe: { ok: false, error: 'spawn nft ENOENT' } }, OPTS);
    assert.match(byId(noNft, 'node-nft-netdev').fix!, /install nftables/);
  });

  it('an agent that is not ready or has no ruleset fails; unprogrammed members warn with their reasons', () => {
    const bad = evaluateNode({ ...OK_FACTS, agent: { ok: true, status: status({ ready: false, ruleset: { installed: false, chains: 0, lastError: 'nft: exit 1' } }) } }, OPTS);
    assert.equal(byId(bad, 'node-agent').status, 'FAIL');
    assert.equal(byId(bad, 'node-agent').detail, 'not ready; ruleset not installed: nft: exit 1');
    const warn = evaluateNode(
      {
        ...OK_FACTS,
        agent: {
          ok: true,
          status: status({}, [
            { podIp: '10.244.1.11', groups: [], programmed: false, reason: 'no_netns' },
            { podIp: '10.244.1.12', groups: [], programmed: true },
          ]),
        },
      },
      OPTS,
    );
    assert.equal(byId(warn, 'node-agent').status, 'WARN');
    assert.match(byId(warn, 'node-agent').detail, /2 local members, 3 chains; not programmed: 10\.244\.1\.11 \(no_netns\)$/);
  });
});

test('doctor --node: a keyless agent is a loud WARN naming --insecure-no-key; a signed one is OK', () => {
  const warn = evaluateNodeKey({ authenticated: false, insecureNoKey: true });
  assert.equal(warn.status, 'WARN');
  assert.match(warn.detail, /INSECURE.*--insecure-no-key/);
  assert.match(warn.fix ?? '', /--key-file/);
  assert.equal(evaluateNodeKey({ authenticated: true }).status, 'OK');
});

test('doctor --node: a pod refused because two domains list it is a WARN naming it and the domains', () => {
  const st = {
    mode: 'node',
    version: '0.1.0',
    nodeIp: '172.31.1.2',
    uplink: 'kmcup',
    vxlanPort: 7472,
    controlPort: 7473,
    ready: true,
    authenticated: true,
    unregistered: 'drop',
    domains: [
      {
        service: 'a',
        vni: 100,
        device: 'kmcvx100',
        label: 'x',
        listed: ['10.244.1.11'],
        localMembers: [],
        refused: [{ podIp: '10.244.1.11', reason: 'multiple_domains', hostVeth: 'kmcv1', domains: ['a', 'b'] }],
        announced: false,
        groups: [],
        peers: [],
        entries: { fdb: 0, mdb: 0 },
      },
    ],
    ruleset: { installed: true, chains: 0 },
    allowList: { installed: true, peers: 0 },
    drops: { control: {} },
  } as NodeStatus;
  const c = evaluateNodeLimits(st);
  assert.equal(c.status, 'WARN');
  assert.match(c.detail, /10\.244\.1\.11 \(multiple_domains: a, b\)/);
});

test('evaluateNodeLimits: datagrams of a protocol version this agent cannot read are a warning that names the rollout', () => {
  const st = {
    domains: [],
    allowList: { installed: true, peers: 0 },
    drops: { control: { unsupported_version: 4 } },
  } as unknown as NodeStatus;
  const c = evaluateNodeLimits(st);
  assert.equal(c.status, 'WARN');
  assert.match(c.detail, /4 control datagrams in a protocol version this agent cannot read/);
  assert.match(c.fix ?? '', /finish the DaemonSet rollout/);
  assert.equal(evaluateNodeLimits({ ...st, drops: { control: { unsupported_version: 0 } } } as unknown as NodeStatus).status, 'OK');
});
