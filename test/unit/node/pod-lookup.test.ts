import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PodLookup } from '../../../src/node/pod-lookup.js';
import type { LookupTimers } from '../../../src/node/pod-lookup.js';

/** A fake clock whose timers run when advanced. */
function fakeTimers(): LookupTimers & { advance(ms: number): Promise<void> } {
  let now = 1_000_000;
  const due: Array<{ at: number; fn: () => void }> = [];
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      due.push({ at: now + ms, fn });
      return {};
    },
    async advance(ms: number) {
      now += ms;
      for (;;) {
        const i = due.findIndex((d) => d.at <= now);
        if (i < 0) break;
        const [d] = due.splice(i, 1);
        d!.fn();
        await new Promise((r) => setImmediate(r));
      }
    },
  };
}

const LOCAL = new Map([['10.244.1.5', 'veth5']]);

test('an unlisted IP: the first request waits for the batch it starts; repeats are answered from the view', async () => {
  const timers = fakeTimers();
  const batches: string[][] = [];
  const lookup = new PodLookup(
    async (ips) => {
      batches.push([...ips]);
      return Promise.resolve(new Map(ips.map((ip) => [ip, LOCAL.get(ip)])));
    },
    { intervalMs: 1000, timers },
  );
  assert.equal(await lookup.get('10.244.1.5'), 'veth5');
  assert.equal(await lookup.get('10.244.1.9'), undefined, 'within the interval: not looked up, not known');
  for (let i = 0; i < 50; i++) assert.equal(await lookup.get('10.244.1.5'), 'veth5');
  assert.deepEqual(batches, [['10.244.1.5']], 'one batch for 52 requests');
  await timers.advance(1000);
  assert.deepEqual(batches, [['10.244.1.5'], ['10.244.1.9']], 'the IP asked within the interval is looked up once the interval passed');
  assert.equal(await lookup.get('10.244.1.9'), undefined);
  assert.equal(batches.length, 2);
});

test('parallel requests while a batch runs share it; a flood of distinct IPs costs one batch per interval, each bounded', async () => {
  const timers = fakeTimers();
  const batches: string[][] = [];
  let release: () => void = () => undefined;
  const lookup = new PodLookup(
    async (ips) => {
      batches.push([...ips]);
      await new Promise<void>((r) => (release = r));
      return new Map(ips.map((ip) => [ip, LOCAL.get(ip)]));
    },
    { intervalMs: 1000, maxBatch: 4, timers },
  );
  const first = [lookup.get('10.244.1.5'), lookup.get('10.244.1.5'), lookup.get('10.244.1.5')];
  release();
  assert.deepEqual(await Promise.all(first), ['veth5', 'veth5', 'veth5']);
  for (let i = 0; i < 100; i++) await lookup.get(`10.9.${i >> 8}.${i & 255}`);
  assert.equal(batches.length, 1, 'no batch within the interval');
  await timers.advance(1000);
  release();
  await new Promise((r) => setImmediate(r));
  assert.equal(batches.length, 2);
  assert.equal(batches[1]!.length, 4, 'a batch carries at most maxBatch IPs');
});
