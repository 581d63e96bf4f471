import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { StringAnswer } from 'dns-packet';
import { answerQuery, parseRecords } from '../../../src/lab/dns-server.js';

/** RCODE is the low 4 bits of the header flags (RFC 1035 4.1.1): 0 NOERROR, 3 NXDOMAIN. */
const rcode = (p: { flags?: number }): number => (p.flags ?? 0) & 0xf;

const records = parseRecords(JSON.stringify({ 'Svc.Default.svc.cluster.local': ['10.244.1.11', '10.244.2.11'] }));
const query = (name: string, type: 'A' | 'AAAA' = 'A'): Buffer =>
  dnsPacket.encode({ id: 4242, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });

test('A query for the service: one answer per member, same id, authoritative', () => {
  const res = answerQuery(query('svc.default.svc.cluster.local'), records);
  assert.ok(res);
  const p = dnsPacket.decode(res);
  assert.equal(p.id, 4242);
  assert.equal(p.type, 'response');
  assert.equal(rcode(p), 0);
  assert.equal(p.flag_aa, true);
  assert.deepEqual(
    (p.answers ?? []).map((a) => [a.type, (a as StringAnswer).data]),
    [
      ['A', '10.244.1.11'],
      ['A', '10.244.2.11'],
    ],
  );
});

test('names are case-insensitive and a trailing dot does not matter', () => {
  const p = dnsPacket.decode(answerQuery(query('SVC.default.svc.cluster.local.'), records) ?? Buffer.alloc(0));
  assert.equal(p.answers?.length, 2);
});

test('another name: NXDOMAIN; AAAA for the service: NOERROR without answers', () => {
  const nx = dnsPacket.decode(answerQuery(query('other.default.svc.cluster.local'), records) ?? Buffer.alloc(0));
  assert.equal(rcode(nx), 3);
  assert.equal(nx.answers?.length, 0);
  const aaaa = dnsPacket.decode(answerQuery(query('svc.default.svc.cluster.local', 'AAAA'), records) ?? Buffer.alloc(0));
  assert.equal(rcode(aaaa), 0);
  assert.equal(aaaa.answers?.length, 0);
});

test('an empty member list answers NOERROR with no records', () => {
  const p = dnsPacket.decode(answerQuery(query('svc.default.svc.cluster.local'), parseRecords('{"svc.default.svc.cluster.local":[]}')) ?? Buffer.alloc(0));
  assert.equal(rcode(p), 0);
  assert.equal(p.answers?.length, 0);
});

test('garbage and responses get no answer', () => {
  assert.equal(answerQuery(Buffer.from('hello'), records), undefined);
  const resp = dnsPacket.encode({ id: 1, type: 'response', questions: [{ type: 'A', name: 'x', class: 'IN' }] });
  assert.equal(answerQuery(resp, records), undefined);
});

test('dual stack: A answers the IPv4 members only, AAAA the IPv6 ones, ANY both', () => {
  const dual = parseRecords(JSON.stringify({ 'svc.default.svc.cluster.local': ['10.244.1.11', 'fd00:10:244:1::11', '10.244.2.11', 'fd00:10:244:2::11'] }));
  const data = (type: 'A' | 'AAAA' | 'ANY'): string[][] =>
    (dnsPacket.decode(answerQuery(query('svc.default.svc.cluster.local', type as 'A'), dual) ?? Buffer.alloc(0)).answers ?? []).map((a) => [a.type, (a as StringAnswer).data]);
  assert.deepEqual(data('A'), [
    ['A', '10.244.1.11'],
    ['A', '10.244.2.11'],
  ]);
  assert.deepEqual(data('AAAA'), [
    ['AAAA', 'fd00:10:244:1::11'],
    ['AAAA', 'fd00:10:244:2::11'],
  ]);
  assert.equal(data('ANY').length, 4);
});
