import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../../src/log.js';
import { PeerTable } from '../../../src/membership/peers.js';
import type { AnnounceChannel, AnnouncedDomain } from '../../../src/node/announce.js';
import { DomainAnnouncements } from '../../../src/node/announce.js';
import type { LocalMember } from '../../../src/node/members.js';

const M = (ip: string): LocalMember => ({ ip, veth: `kmcv${ip.split('.')[3]}`, vethIndex: 4, netns: `kmcp${ip.split('.')[3]}`, podIndex: 2 });

function fixture(): { sent: string[]; channel: AnnounceChannel; d: AnnouncedDomain; a: DomainAnnouncements } {
  const sent: string[] = [];
  const channel: AnnounceChannel = {
    sendState: async (label, peers, groups) => void sent.push(`STATE ${label} ${peers.join(',')} ${[...groups].join(',')}`),
    sendLeave: async (label, peers) => void sent.push(`LEAVE ${label} ${peers.join(',')}`),
    unannouncedGroups: () => 0,
  };
  const table = new PeerTable({ selfIp: '172.31.1.1', expiryMs: 5000 });
  table.setListed('static', ['172.31.2.2']);
  const d: AnnouncedDomain = {
    label: 'node:100/app',
    domain: { service: 'app', vni: 100, device: 'kmcvx100' },
    table,
    local: new Map(),
    groups: new Map(),
    announced: false,
    announcedGroups: '',
  };
  const a = new DomainAnnouncements({ channel: () => channel, gatewayGroups: () => undefined, log: silentLogger() });
  return { sent, channel, d, a };
}

test('a joins pass never makes the first announcement; a full pass does, then only changes go out, and LEAVE when no member is left', async () => {
  const { sent, d, a } = fixture();
  const m = M('10.244.1.11');
  d.local = new Map([[m.ip, m]]);
  d.groups.set(m.ip, ['239.1.1.1']);
  await a.sync([d], true, 1000);
  assert.deepEqual(sent, [], 'changesOnly: the domain is not announced yet');
  assert.equal(d.announced, false);
  await a.sync([d], false, 2000);
  assert.deepEqual(sent, ['STATE node:100/app 172.31.2.2 239.1.1.1']);
  assert.equal(d.announcedAt, 2000);
  await a.sync([d], true, 3000);
  assert.equal(sent.length, 1, 'nothing changed: nothing sent');
  d.groups.set(m.ip, ['239.1.1.1', '239.1.1.2']);
  await a.sync([d], true, 4000);
  assert.deepEqual(sent.slice(1), ['STATE node:100/app 172.31.2.2 239.1.1.1,239.1.1.2'], 'a joins pass sends the change');
  assert.equal(d.announcedAt, 2000, 'still announced since the first STATE');
  d.local = new Map();
  await a.sync([d], false, 5000);
  assert.deepEqual(sent.slice(2), ['LEAVE node:100/app 172.31.2.2']);
  assert.equal(d.announced, false);
  await a.leaveAll([d]);
  assert.equal(sent.length, 3, 'not announced: no second LEAVE');
});

test('without a control socket nothing is sent and nothing throws', async () => {
  const { d } = fixture();
  const a = new DomainAnnouncements({ channel: () => undefined, gatewayGroups: () => ['239.9.9.9'], log: silentLogger() });
  await a.sync([d]);
  assert.equal(d.announced, true, "the gateway's groups announce the domain even without members");
  await a.announce(d, ['172.31.2.2']);
  assert.equal(a.unannounced(d), 0);
});
