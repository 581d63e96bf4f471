import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { decode } from '../../../src/membership/codec.js';
import { PeerTable } from '../../../src/membership/peers.js';
import {
  assignMembers,
  announcedGroups,
  announcement,
  domainGroups,
  isProgrammed,
  joinedAnywhere,
  listedPodStatus,
  peerEntryKey,
  peerNodesReadiness,
  peerNodesStatus,
  peerWaitBound,
} from '../../../src/node/domain.js';
import type { LocalMember } from '../../../src/node/members.js';
import { parseRuleset } from '../../../src/node/nft.js';
import { fixture } from '../fixtures.js';
import { CLUSTER, KEY1, encoder, ok } from '../membership/helpers.js';

const m = (ip: string, veth: string): LocalMember => ({ ip, veth, vethIndex: 4, netns: `kmc${veth}`, podIndex: 2 });
const local = new Map([
  ['10.244.1.11', m('10.244.1.11', 'kmcv1')],
  ['10.244.1.12', m('10.244.1.12', 'kmcv2')],
]);

test('domainGroups: the union of the local members groups, sorted; a departed member does not count', () => {
  const groups = new Map([
    ['10.244.1.11', ['239.1.1.2', '239.1.1.10']],
    ['10.244.1.12', ['239.1.1.2']],
    ['10.244.9.9', ['239.9.9.9']],
  ]);
  assert.deepEqual(domainGroups({ local, groups }), ['239.1.1.2', '239.1.1.10']);
});

test('announcement: STATE first and on a group change, nothing when unchanged, LEAVE when the last member goes', () => {
  const groups = new Map([['10.244.1.11', ['239.1.1.1']]]);
  assert.deepEqual(announcement({ local, groups, announced: false, announcedGroups: '' }), { send: 'state', announced: true, announcedGroups: '239.1.1.1' });
  assert.deepEqual(announcement({ local, groups, announced: true, announcedGroups: '239.1.1.1' }), { send: undefined, announced: true, announcedGroups: '239.1.1.1' });
  assert.equal(announcement({ local, groups: new Map(), announced: true, announcedGroups: '239.1.1.1' }).send, 'state');
  assert.deepEqual(announcement({ local: new Map(), groups, announced: true, announcedGroups: '239.1.1.1' }), { send: 'leave', announced: false, announcedGroups: '' });
  assert.deepEqual(announcement({ local: new Map(), groups, announced: false, announcedGroups: '' }), { send: undefined, announced: false, announcedGroups: '' });
});
test('announcement: the active gateway announces its outbound groups, members or not', () => {
  const groups = new Map([['10.244.1.11', ['239.1.1.1']]]);
  const none = new Map<string, LocalMember>();
  assert.deepEqual(announcement({ local: none, groups: new Map(), announced: false, announcedGroups: '' }, ['239.9.9.9']), { send: 'state', announced: true, announcedGroups: '239.9.9.9' });
  // Only link-local outbound groups: nothing to list, but the node must be announced to get them.
  assert.deepEqual(announcement({ local: none, groups: new Map(), announced: false, announcedGroups: '' }, []), { send: 'state', announced: true, announcedGroups: '' });
  // Standby again (undefined) with no member: LEAVE.
  assert.equal(announcement({ local: none, groups: new Map(), announced: true, announcedGroups: '239.9.9.9' }).send, 'leave');
  assert.deepEqual(announcedGroups({ local, groups }, ['239.0.0.5', '239.1.1.1']), ['239.0.0.5', '239.1.1.1']);
  assert.deepEqual(announcedGroups({ local, groups }, undefined), domainGroups({ local, groups }));
});

test('isProgrammed: both verified chains name the member; a stale chain, another domain or no device is not', () => {
  const chains = parseRuleset(fixture('iproute2/node/nft-node.json'));
  const d = { domain: { service: 'a', vni: 100, device: 'kmcvx100' }, deviceOk: true } as Parameters<typeof isProgrammed>[0];
  assert.equal(
    isProgrammed(d, m('10.244.1.11', 'kmcv1'), (n) => chains.get(n)),
    true,
  );
  assert.equal(
    isProgrammed(d, m('10.244.1.13', 'kmcv3'), (n) => chains.get(n)),
    false,
  );
  assert.equal(
    isProgrammed({ ...d, deviceOk: false }, m('10.244.1.11', 'kmcv1'), (n) => chains.get(n)),
    false,
  );
  assert.equal(
    isProgrammed({ ...d, domain: { ...d.domain, vni: 200, device: 'kmcvx200' } }, m('10.244.1.11', 'kmcv1'), (n) => chains.get(n)),
    false,
  );
  const stale = parseRuleset(fixture('iproute2/node/nft-node-stale.json'));
  assert.equal(
    isProgrammed(d, m('10.244.1.11', 'kmcv1'), (n) => stale.get(n)),
    false,
  );
});

test('listedPodStatus: unlisted undefined, listed but not local with its reason, local with veth and groups', () => {
  const d = {
    domain: { service: 'a.default.svc.cluster.local', vni: 100, device: 'kmcvx100' },
    listed: ['10.244.1.11', '10.244.1.12', '10.244.2.11', '10.244.1.99'],
    local,
    reasons: new Map([['10.244.2.11', 'not_local' as const]]),
    groups: new Map([['10.244.1.11', ['239.1.1.1']]]),
    refused: new Map(),
  } as unknown as Parameters<typeof listedPodStatus>[0];
  const yes = (): boolean => true;
  const readiness = { settled: true, degraded: false, ready: true, listed: 0, heard: 0, waitingFor: [], readyBy: 0 };
  const peers = { readiness, status: peerNodesStatus(readiness, 0, 5000) };
  assert.equal(listedPodStatus(d, '10.9.9.9', yes, peers), undefined);
  assert.deepEqual(listedPodStatus(d, '10.244.2.11', yes, peers), { podIp: '10.244.2.11', programmed: false, reason: 'not_local', domain: 'a.default.svc.cluster.local' });
  assert.equal(listedPodStatus(d, '10.244.1.99', yes, peers)?.reason, 'pending', 'listed, not resolved yet');
  assert.deepEqual(listedPodStatus(d, '10.244.1.11', yes, peers), {
    podIp: '10.244.1.11',
    programmed: true,
    domain: 'a.default.svc.cluster.local',
    hostVeth: 'kmcv1',
    groups: ['239.1.1.1'],
    peers: peers.status,
  });
  assert.deepEqual(
    listedPodStatus(d, '10.244.1.12', () => false, peers),
    { podIp: '10.244.1.12', programmed: false, reason: 'pending', domain: 'a.default.svc.cluster.local', hostVeth: 'kmcv2', groups: [] },
  );
  const waiting = { ...readiness, settled: false, ready: false, listed: 2, heard: 1, waitingFor: ['172.31.3.2'], readyBy: 4000 };
  const st = listedPodStatus(d, '10.244.1.11', yes, { readiness: waiting, status: peerNodesStatus(waiting, 1000, 5000) });
  assert.equal(st?.programmed, false, 'captured locally is not enough while a peer node is unheard');
  assert.equal(st?.reason, 'peers');
  assert.deepEqual(st?.peers, { listed: 2, heard: 1, waitingFor: ['172.31.3.2'], degraded: false, boundMs: 5000, leftMs: 3000 });
});

describe('peerNodesReadiness: heard and programmed, or the bounded wait passed', () => {
  const SELF = '172.31.1.2';
  const N2 = '172.31.2.2';
  const N3 = '172.31.3.2';
  function tableWith(listed: string[]): PeerTable {
    const t = new PeerTable({ selfIp: SELF, expiryMs: 5000 });
    t.setListed('static', listed);
    return t;
  }
  function hear(t: PeerTable, ip: string, now: number, kind: 'state' | 'leave' = 'state', groups: string[] = ['239.1.1.1']): void {
    const enc = encoder(ip);
    const dgs = kind === 'state' ? enc.state({ mac: '02:00:00:00:00:01', overlay: ip, groups }, now) : [enc.leave(now)];
    for (const dg of dgs) {
      const msg = ok(decode(dg, { keys: [KEY1], cluster: CLUSTER }));
      t.receive(msg, ip, now, { authenticated: true });
    }
  }

  it('nothing listed: settled at once', () => {
    const r = peerNodesReadiness({ table: tableWith([]), programmedPeers: new Set() }, 0, 5000);
    assert.deepEqual([r.settled, r.ready, r.degraded, r.listed], [true, true, false, 0]);
  });

  it('a listed node never heard: not ready until the bound, then degraded naming it', () => {
    const t = tableWith([N2, N3]);
    hear(t, N2, 100);
    const programmed = new Set([peerEntryKey(N2, ['239.1.1.1'])]);
    const before = peerNodesReadiness({ table: t, programmedPeers: programmed }, 4999, 5000);
    assert.deepEqual([before.ready, before.degraded, before.heard, before.waitingFor], [false, false, 1, [N3]]);
    const after = peerNodesReadiness({ table: t, programmedPeers: programmed }, 5000, 5000);
    assert.deepEqual([after.ready, after.degraded, after.settled, after.waitingFor], [true, true, false, [N3]]);
  });

  it('heard is not enough: the entries towards it (with its current groups) must be programmed', () => {
    const t = tableWith([N2]);
    hear(t, N2, 100);
    assert.equal(peerNodesReadiness({ table: t, programmedPeers: new Set() }, 200, 5000).ready, false);
    assert.equal(peerNodesReadiness({ table: t, programmedPeers: new Set([peerEntryKey(N2, [])]) }, 200, 5000).ready, false, 'programmed with older groups');
    assert.equal(peerNodesReadiness({ table: t, programmedPeers: new Set([peerEntryKey(N2, ['239.1.1.1'])]) }, 200, 5000).settled, true);
  });

  it('a node that answered LEAVE (no members there) counts as heard; an unlisted one is not waited for', () => {
    const t = tableWith([N2]);
    hear(t, N2, 100, 'leave');
    hear(t, N3, 100);
    const r = peerNodesReadiness({ table: t, programmedPeers: new Set() }, 200, 5000);
    assert.deepEqual([r.settled, r.listed, r.heard], [true, 1, 1]);
  });
});

test("joinedAnywhere: local members' groups and every alive peer node's, once, in order", () => {
  const groups = new Map([['10.244.1.11', ['239.1.1.10', '239.1.1.2']]]);
  const table = { alive: () => [{ groups: ['239.1.1.2', '239.0.0.1'] }, { groups: [] }] } as unknown as Parameters<typeof joinedAnywhere>[0]['table'];
  assert.deepEqual(joinedAnywhere({ local, groups, table }), ['239.0.0.1', '239.1.1.2', '239.1.1.10']);
});

test('listedPodStatus: a pod two domains list is refused with the reason and both domains', () => {
  const d = {
    domain: { service: 'a', vni: 100, device: 'kmcvx100' },
    listed: ['10.244.1.11'],
    local: new Map(),
    reasons: new Map([['10.244.1.11', 'multiple_domains' as const]]),
    groups: new Map(),
    refused: new Map([['10.244.1.11', { podIp: '10.244.1.11', reason: 'multiple_domains' as const, hostVeth: 'kmcv1', domains: ['a', 'b'] }]]),
  } as unknown as Parameters<typeof listedPodStatus>[0];
  const readiness = { settled: true, degraded: false, ready: true, listed: 0, heard: 0, waitingFor: [], readyBy: 0 };
  assert.deepEqual(
    listedPodStatus(d, '10.244.1.11', () => true, { readiness, status: peerNodesStatus(readiness, 0, 5000) }),
    { podIp: '10.244.1.11', programmed: false, reason: 'multiple_domains', domain: 'a,b', hostVeth: 'kmcv1' },
  );
});

describe("peerWaitBound: the peer-node wait runs from the domain's first announcement, never before one expiry after the start", () => {
  it('a domain announced long after the agent started gets a full expiry from then', () => {
    // Agent started at 0 (bound 5000); the app's first pod appeared at 600000.
    assert.equal(peerWaitBound(5000, 600_000, 600_100, 5000), 605_000);
  });
  it("announced right after the start: the start's bound", () => {
    assert.equal(peerWaitBound(5000, 0, 100, 5000), 5000);
    assert.equal(peerWaitBound(5000, 2000, 2500, 5000), 7000);
  });
  it('not announced yet: never passed', () => {
    assert.equal(peerWaitBound(5000, undefined, 900_000, 5000), 905_000);
  });
});

test('assignMembers: a pod two domains list is refused, a second claimant too; joins of a moved or departed member are dropped', () => {
  const a = m('10.244.1.11', 'kmcva');
  const b = m('10.244.1.12', 'kmcvb');
  const c = m('10.244.1.13', 'kmcvc');
  const d = {
    domain: { service: 'app', vni: 100, device: 'kmcvx100' },
    local: new Map([
      [a.ip, a],
      [b.ip, b],
    ]),
    reasons: new Map(),
    refused: new Map(),
    groups: new Map([
      [a.ip, ['239.1.1.1']],
      [b.ip, ['239.1.1.2']],
    ]),
    ipv6: new Map([
      [a.ip, ['fd00::a']],
      [b.ip, ['fd00::b']],
    ]),
  };
  const moved = { ...a, netns: 'kmcnew' };
  const second = m('10.244.1.12', 'kmcvz');
  const r = assignMembers(
    d,
    {
      local: new Map([
        [moved.ip, moved],
        [b.ip, b],
        [c.ip, c],
      ]),
      reasons: new Map(),
      conflicts: new Map([[b.ip, [second]]]),
    },
    new Map([[c.ip, ['app', 'other']]]),
  );
  assert.deepEqual(r, { refusedChanged: true, membersChanged: false }, 'the same IPs on the same veths: no news for the log');
  assert.deepEqual([...d.local.keys()], [a.ip, b.ip], 'the shared pod is no member');
  assert.equal(d.reasons.get(c.ip), 'multiple_domains');
  assert.deepEqual(
    [...d.refused.values()].map((x) => [x.podIp, x.reason, x.hostVeth]),
    [
      [b.ip, 'ip_conflict', 'kmcvz'],
      [c.ip, 'multiple_domains', 'kmcvc'],
    ],
  );
  assert.deepEqual([...d.groups], [[b.ip, ['239.1.1.2']]], "the moved pod's joins are read again from its new namespace");
  assert.deepEqual([...d.ipv6], [[b.ip, ['fd00::b']]], 'and its addresses');
  const again = assignMembers(
    d,
    {
      local: new Map([
        [b.ip, b],
        [c.ip, c],
      ]),
      reasons: new Map(),
      conflicts: new Map([[b.ip, [second]]]),
    },
    new Map([[c.ip, ['app', 'other']]]),
  );
  assert.deepEqual(again, { refusedChanged: false, membersChanged: true }, 'the same refusal is not news');
  assert.deepEqual([...d.groups.keys()], [b.ip], 'a departed member keeps no joins');
  assert.deepEqual([...d.ipv6.keys()], [b.ip]);
});
