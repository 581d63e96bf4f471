import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeRunner } from '../../../src/kernel/runner.js';
import { silentLogger } from '../../../src/log.js';
import { MemberJoinReads, readMemberJoins } from '../../../src/node/joins.js';
import type { LocalMember } from '../../../src/node/members.js';
import { fixture } from '../fixtures.js';

const M = (ip: string, netns: string): LocalMember => ({ ip, veth: `kmcv${ip.split('.')[3]}`, vethIndex: 4, netns, podIndex: 2 });

test('read: the routable groups on the pod side of the veth, read in its own namespace', async () => {
  const runner = new FakeRunner().on('ip -j maddr show', (c) => (c.netns === 'kmcp1' ? { stdout: fixture('iproute2/node/maddr-all.json') } : { code: 1, stderr: 'Cannot open network namespace' }));
  assert.deepEqual(await readMemberJoins(runner, silentLogger(), M('10.244.1.11', 'kmcp1')), ['239.1.1.1'], '224.0.0.x is not announced');
  assert.equal(await readMemberJoins(runner, silentLogger(), M('10.244.1.12', 'kmcgone')), undefined, 'a pod gone: no answer, no throw');
  assert.deepEqual(
    runner.calls.map((c) => [c.argv.join(' '), c.netns]),
    [
      ['ip -j maddr show', 'kmcp1'],
      ['ip -j maddr show', 'kmcgone'],
    ],
  );
});

test('MemberJoinReads: overlapping reads of one member keep the newer one, whatever order they end in', async () => {
  const answers: Array<(g: string[] | undefined) => void> = [];
  const reads = new MemberJoinReads(async () => await new Promise<string[] | undefined>((r) => answers.push(r)));
  const m = M('10.244.1.11', 'kmcp1');
  const d = { label: 'node:100/app', local: new Map([[m.ip, m]]), groups: new Map<string, string[]>() };
  const old = reads.readInto(d, m); // a full pass's read, started first
  const fresh = reads.readInto(d, m); // a joins pass's read after an event
  answers[1]!(['239.1.1.1', '239.1.1.2']);
  assert.equal(await fresh, true);
  answers[0]!(['239.1.1.1']); // the older read ends last, with what was joined before the event
  assert.equal(await old, false, 'not kept');
  assert.deepEqual(d.groups.get(m.ip), ['239.1.1.1', '239.1.1.2'], 'the join is not lost');
  const third = reads.readInto(d, m);
  answers[2]!([]);
  assert.equal(await third, true, 'a later read (a leave) is kept');
  assert.deepEqual(d.groups.get(m.ip), []);
});

test('MemberJoinReads: a member gone or re-created while its read ran keeps nothing from it', async () => {
  const answers: Array<(g: string[] | undefined) => void> = [];
  const reads = new MemberJoinReads(async () => await new Promise<string[] | undefined>((r) => answers.push(r)));
  const m = M('10.244.1.11', 'kmcp1');
  const d = { label: 'node:100/app', local: new Map([[m.ip, m]]), groups: new Map<string, string[]>() };
  const gone = reads.readInto(d, m);
  d.local = new Map(); // a full pass found the pod gone
  answers[0]!(['239.1.1.1']);
  assert.equal(await gone, false);
  assert.equal(d.groups.has(m.ip), false);
  const again = reads.readInto(d, m);
  d.local = new Map([[m.ip, M('10.244.1.11', 'kmcp9')]]); // the same IP, a new pod
  answers[1]!(['239.1.1.1']);
  assert.equal(await again, false);
  assert.equal(d.groups.has(m.ip), false, "the old pod's groups are not the new pod's");
  const failed = reads.readInto(d, d.local.get(m.ip)!);
  answers[2]!(undefined); // could not be read
  assert.equal(await failed, false);
  reads.retain(() => false);
});
