import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../../src/log.js';
import { Announcer } from '../../../src/membership/announcer.js';
import type { LocalState } from '../../../src/membership/codec.js';
import { MAC_A, groups } from './helpers.js';

function fakeChannel(opts: { fail?: boolean; unannounced?: number } = {}) {
  const sent: Array<{ to: readonly string[]; groups: string[] }> = [];
  return {
    sent,
    unannouncedGroups: opts.unannounced ?? 0,
    async sendState(to: readonly string[], state: LocalState) {
      if (opts.fail) throw new RangeError('boom');
      sent.push({ to, groups: [...state.groups] });
      return { datagrams: to.length, failed: 0 };
    },
  };
}

describe('announcer', () => {
  it('sends nothing until the local groups are known: a restarted agent never announces an empty set', async () => {
    const ch = fakeChannel();
    let local = { mac: MAC_A, overlay: '10.0.0.1', groups: [] as string[] };
    const a = new Announcer({ channel: ch, local: () => local, targets: () => ['10.0.0.2'], log: silentLogger() });
    await a.announce(['10.0.0.2']);
    await a.announce();
    assert.deepEqual(ch.sent, [], 'before the first read of the joined groups');
    local = { ...local, groups: ['239.1.1.1'] };
    a.localKnown();
    await a.announce();
    assert.deepEqual(ch.sent, [{ to: ['10.0.0.2'], groups: ['239.1.1.1'] }]);
  });

  it('never rejects: a failing send is logged and counted', async () => {
    const a = new Announcer({ channel: fakeChannel({ fail: true }), local: () => ({ mac: MAC_A, overlay: '10.0.0.1', groups: [] }), targets: () => ['10.0.0.2'], log: silentLogger() });
    a.localKnown();
    await a.announce();
    assert.equal(a.failures, 1);
  });

  it('reports a capped STATE once per change of the dropped count', async () => {
    const ch = fakeChannel({ unannounced: 5000 });
    const capped: number[] = [];
    const a = new Announcer({
      channel: ch,
      local: () => ({ mac: MAC_A, overlay: '10.0.0.1', groups: groups(25_000) }),
      targets: () => ['10.0.0.2'],
      log: silentLogger(),
      onCapped: (n) => capped.push(n),
    });
    a.localKnown();
    await a.announce();
    await a.announce();
    ch.unannouncedGroups = 0;
    await a.announce();
    assert.deepEqual(capped, [5000, 0]);
    assert.equal(a.unannounced, 0);
  });
});
