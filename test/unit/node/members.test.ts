import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpClient } from '../../../src/kernel/ip.js';
import { parseIpv4AddrsOf, parseIpv4MaddrsOf, parseLinks, parseNetnsIds, parseRouteGet } from '../../../src/kernel/parse.js';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { MemberBindings, MemberResolver, classify, matchBridgePort, matchBridgePorts, sharedClaims } from '../../../src/node/members.js';
import type { LocalMember } from '../../../src/node/members.js';
import type { LinkInfo } from '../../../src/kernel/parse.js';
import { fixture } from '../fixtures.js';

const f = (name: string): string => fixture(`iproute2/node/${name}`);
const RULES = f('rules-default.json');

test('parsers read the recorded route get, link, netns list-id, addr and maddr output', () => {
  assert.deepEqual(parseRouteGet(f('route-get-calico.json')), { dev: 'kmcv1', gateway: undefined, type: 'unicast' });
  assert.equal(parseRouteGet(f('route-get-remote.json'))?.gateway, '172.31.1.1');
  const [veth] = parseLinks(f('link-veth.json'));
  assert.equal(veth?.kind, 'veth');
  assert.equal(veth?.linkNetnsid, 2);
  assert.equal(veth?.linkIndex, 2);
  const ports = parseLinks(f('links-bridge-ports.json'));
  assert.deepEqual(
    ports.map((p) => [p.name, p.master, p.kind]),
    [
      ['kmcv1', 'kmcbr', 'veth'],
      ['kmcv2', 'kmcbr', 'veth'],
    ],
  );
  assert.deepEqual(
    [...parseNetnsIds(f('netns-list-id.json'))],
    [
      [0, 'kmcncf-r'],
      [1, 'kmcncf-n2p1'],
      [2, 'kmcncf-n2p2'],
    ],
  );
  assert.deepEqual(parseIpv4AddrsOf(f('addr-all.json'), 2), ['10.244.2.12']);
  assert.deepEqual(parseIpv4MaddrsOf(f('maddr-all.json'), 2).sort(), ['224.0.0.1', '224.0.0.251', '239.1.1.1']);
  assert.deepEqual(parseIpv4MaddrsOf(f('maddr-all.json'), 99), []);
});

/** What one `ip -j -d link show` (every link) answers: the arrays of per-device fixtures, joined. */
const links = (...arrays: string[]): string => JSON.stringify(arrays.flatMap((a) => JSON.parse(a) as unknown[]));
const UPLINK = '[{"ifindex":2,"ifname":"kmcup","flags":["UP"],"linkinfo":{"info_kind":"veth"}}]';

test('classify: a veth is the pod, a bridge is scanned, a gateway route is another node', () => {
  const [veth] = parseLinks(f('link-veth.json'));
  const [bridge] = parseLinks(f('link-bridge.json'));
  assert.equal(classify(parseRouteGet(f('route-get-calico.json')), veth), 'veth');
  assert.equal(classify(parseRouteGet(f('route-get-bridge.json')), bridge), 'bridge');
  assert.equal(classify(parseRouteGet(f('route-get-remote.json')), veth), 'remote');
  assert.equal(classify(undefined, veth), 'remote');
  const ports = parseLinks(f('links-bridge-ports.json'));
  assert.equal(matchBridgePort(ports, new Map([[ports[1]!.ifindex, ['10.244.2.12']]]), '10.244.2.12')?.name, 'kmcv2');
  assert.equal(matchBridgePort(ports, new Map(), '10.244.2.12'), undefined);
});

test('calico pods resolve to their host veths from one route read, one read of every link and the nsid map', async () => {
  const runner = new FakeRunner()
    .on('ip -4 -j rule show', { stdout: RULES })
    .on('ip -4 -j route show table all', { stdout: f('routes-calico.json') })
    .on('ip -j -d link show', { stdout: links(f('link-veth.json'), UPLINK) })
    .on('ip -j netns list-id', { stdout: '[{"nsid":2,"name":"kmcncf-n1p1"}]' });
  const resolver = new MemberResolver(new IpClient(runner), (ns) => new IpClient(runner, ns));
  const r = await resolver.resolve('10.244.1.11');
  assert.deepEqual(r, { local: { ip: '10.244.1.11', veth: 'kmcv1', vethIndex: 4, netns: 'kmcncf-n1p1', podIndex: 2, nsid: 2, mtu: 1500 } });
  assert.deepEqual(await resolver.resolve('10.244.2.11'), { reason: 'not_local' }, 'another node: matches only the default route');
  assert.deepEqual(await resolver.resolve('172.31.1.2'), { reason: 'not_local' }, "the node's own address: a local-table route");
  assert.deepEqual(runner.commands(), ['ip -4 -j rule show', 'ip -4 -j route show table all', 'ip -j -d link show', 'ip -j netns list-id'], 'one link read for the pass, whatever the number of pods');
  assert.ok(runner.calls.every((c) => c.netns === undefined));
});

test('a bridge pod is found by reading each port peer address in its own namespace', async () => {
  const runner = new FakeRunner()
    .on('ip -4 -j rule show', { stdout: RULES })
    .on('ip -4 -j route show table all', { stdout: f('routes-bridge.json') })
    .on('ip -j -d link show master kmcbr', { stdout: f('links-bridge-ports.json') })
    .on('ip -j -d link show', { stdout: links(f('link-bridge.json'), UPLINK) })
    .on('ip -j netns list-id', { stdout: f('netns-list-id.json') })
    .on('ip -j addr show', (call) => ({ stdout: call.netns === 'kmcncf-n2p2' ? f('addr-all.json') : '[]' }));
  const resolver = new MemberResolver(new IpClient(runner), (ns) => new IpClient(runner, ns));
  const r = await resolver.resolve('10.244.2.12');
  assert.ok('local' in r);
  assert.equal(r.local.veth, 'kmcv2');
  assert.equal(r.local.netns, 'kmcncf-n2p2');
  assert.deepEqual(
    runner.calls
      .filter((c) => c.argv.join(' ') === 'ip -j addr show')
      .map((c) => c.netns)
      .sort(),
    ['kmcncf-n2p1', 'kmcncf-n2p2'],
  );
  assert.deepEqual(await resolver.resolve('10.244.2.11'), { reason: 'not_local' }, 'in the bridge /24 but on no port');
  assert.equal(runner.commands().filter((c) => c.startsWith('ip -4 -j route')).length, 1, 'one route read per pass');
  assert.equal(runner.commands().filter((c) => c === 'ip -j -d link show master kmcbr').length, 1, 'one bridge scan per pass');
});

test('policy rules beyond the defaults: each IP is asked with ip route get', async () => {
  const rules = '[{"priority":0,"src":"all","table":"local"},{"priority":100,"src":"10.244.1.0/24","table":"7"},{"priority":32766,"src":"all","table":"main"}]';
  const runner = new FakeRunner()
    .on('ip -4 -j rule show', { stdout: rules })
    .on('ip -j route get 10.244.1.11', { stdout: f('route-get-calico.json') })
    .on('ip -j -d link show', { stdout: links(f('link-veth.json'), UPLINK) })
    .on('ip -j netns list-id', { stdout: '[{"nsid":2,"name":"kmcncf-n1p1"}]' });
  const r = await new MemberResolver(new IpClient(runner), (ns) => new IpClient(runner, ns)).resolve('10.244.1.11');
  assert.ok('local' in r);
  assert.deepEqual(runner.commands(), ['ip -4 -j rule show', 'ip -j route get 10.244.1.11', 'ip -j -d link show', 'ip -j netns list-id']);
});

test('a pod on another node is not_local; a veth whose peer namespace has no name is no_netns', async () => {
  const remote = new FakeRunner()
    .on('ip -4 -j rule show', { stdout: RULES })
    .on('ip -4 -j route show table all', { stdout: f('routes-bridge.json') })
    .on('ip -j -d link show', { stdout: UPLINK });
  assert.deepEqual(await new MemberResolver(new IpClient(remote), (ns) => new IpClient(remote, ns)).resolve('10.244.1.11'), { reason: 'not_local' });
  const anon = new FakeRunner()
    .on('ip -4 -j rule show', { stdout: RULES })
    .on('ip -4 -j route show table all', { stdout: f('routes-calico.json') })
    .on('ip -j -d link show', { stdout: links(f('link-veth.json'), UPLINK) })
    .on('ip -j netns list-id', { stdout: '[{"nsid":2}]' });
  assert.deepEqual(await new MemberResolver(new IpClient(anon), (ns) => new IpClient(anon, ns)).resolve('10.244.1.11'), { reason: 'no_netns' });
});

test('sharedClaims: IPs more than one domain lists, with those domains; a repeat within one domain is not a claim', () => {
  const c = sharedClaims([
    { service: 'a', listed: ['10.0.0.1', '10.0.0.2', '10.0.0.2'] },
    { service: 'b', listed: ['10.0.0.3', '10.0.0.1'] },
    { service: 'c', listed: ['10.0.0.1'] },
  ]);
  assert.deepEqual([...c], [['10.0.0.1', ['a', 'b', 'c']]]);
  assert.equal(sharedClaims([{ service: 'a', listed: ['10.0.0.1'] }]).size, 0);
});

test('MemberBindings: a member stays on its first veth; a second claimant is refused until that veth is gone', async () => {
  const m = (veth: string, vethIndex: number): LocalMember => ({ ip: '10.244.2.12', veth, vethIndex, netns: `ns-${veth}`, podIndex: 2 });
  const victim = m('kmcv1', 11);
  const attacker = m('kmcv9', 19);
  const b = new MemberBindings();
  let alive = new Set(['kmcv1#11', 'kmcv9#19']);
  const exists = async (veth: string, index: number): Promise<boolean> => Promise.resolve(alive.has(`${veth}#${index}`));
  assert.deepEqual(await b.choose(victim.ip, [victim], exists), { member: victim, refused: [] });
  // The attacker's veth sorts first by name or scan order: the binding still wins.
  assert.deepEqual(await b.choose(victim.ip, [attacker, victim], exists), { member: victim, refused: [attacker] });
  // The victim dropped the IP but its veth is still there: nobody is followed.
  assert.deepEqual(await b.choose(victim.ip, [attacker], exists), { member: undefined, refused: [attacker] });
  // The victim's veth is gone (pod deleted): the IP may move.
  alive = new Set(['kmcv9#19']);
  assert.deepEqual(await b.choose(victim.ip, [attacker], exists), { member: attacker, refused: [] });
  // No binding yet and two claimants (an agent restart): the oldest veth (lowest ifindex) wins.
  const fresh = new MemberBindings();
  assert.deepEqual(await fresh.choose(victim.ip, [attacker, victim], exists), { member: victim, refused: [attacker] });
  fresh.retain(() => false);
  assert.deepEqual(await fresh.choose(victim.ip, [attacker], exists), { member: attacker, refused: [] }, 'a forgotten IP binds anew');
});

test('matchBridgePorts: every port whose peer holds the IP, lowest ifindex first', () => {
  const port = (name: string, ifindex: number): LinkInfo => ({ name, ifindex, kind: 'veth' }) as LinkInfo;
  const ports = [port('kmcv9', 19), port('kmcv1', 11), port('kmcv2', 12)];
  const addrs = new Map([
    [19, ['10.244.2.12']],
    [11, ['10.244.2.12']],
    [12, ['10.244.2.13']],
  ]);
  assert.deepEqual(
    matchBridgePorts(ports, addrs, '10.244.2.12').map((p) => p.name),
    ['kmcv1', 'kmcv9'],
  );
});

test('an IPv6-only node: a member by its IPv6 address, its /128 route (calico) or its address on a bridge port (bridge), as recorded', async () => {
  const v6 = (name: string): string => fixture(`iproute2/node/v6only/${name}`);
  const calico = new FakeRunner()
    .on('ip -4 -j rule show', { stdout: v6('rules4.json') })
    .on('ip -4 -j route show table all', { stdout: v6('routes4.json') })
    .on('ip -j route get fd00:10:244:1::11', { stdout: v6('route-get-calico.json') })
    .on('ip -j route get fd00:10:244:2::11', { stdout: v6('route-get-remote.json') })
    .on('ip -j -d link show', { stdout: v6('links-n1.json') })
    .on('ip -j netns list-id', { stdout: v6('netns-list-id-n1.json') });
  const c = new MemberResolver(new IpClient(calico), (ns) => new IpClient(calico, ns));
  assert.deepEqual(await c.resolve('fd00:10:244:1::11'), { local: { ip: 'fd00:10:244:1::11', veth: 'kmcv1', vethIndex: 3, netns: 'kmcv6m-n1p1', podIndex: 2, nsid: 1, mtu: 1500 } });
  assert.deepEqual(await c.resolve('fd00:10:244:2::11'), { reason: 'not_local' }, 'another node: via the router');
  const bridge = new FakeRunner()
    .on('ip -4 -j rule show', { stdout: v6('rules4.json') })
    .on('ip -4 -j route show table all', { stdout: v6('routes4.json') })
    .on('ip -j route get fd00:10:244:2::11', { stdout: v6('route-get-bridge.json') })
    .on('ip -j -d link show master kmcbr', { stdout: v6('links-bridge-ports.json') })
    .on('ip -j -d link show', { stdout: v6('links-n2.json') })
    .on('ip -j netns list-id', { stdout: v6('netns-list-id-n2.json') })
    .on('ip -j addr show', (call) => ({ stdout: call.netns === 'kmcv6m-n2p1' ? v6('addr-all-n2p1.json') : '[]' }));
  const b = new MemberResolver(new IpClient(bridge), (ns) => new IpClient(bridge, ns));
  const r = await b.resolve('fd00:10:244:2::11');
  assert.ok('local' in r, JSON.stringify(r));
  assert.deepEqual([r.local.veth, r.local.netns], ['kmcv1', 'kmcv6m-n2p1']);
});
