import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KmcastError } from '../../../src/errors.js';
import type { AllowListSpec, AllowListState } from '../../../src/overlay/allowlist.js';
import type { CaptureSpec, CaptureState } from '../../../src/overlay/capture.js';
import { PodFilters } from '../../../src/sidecar/filters.js';

const TARGET: CaptureSpec = { underlay: 'eth0', device: 'vx0', broadcastAddress: undefined };
const CAPTURED = { packets: 7 } as unknown as CaptureState;

/** An allow-list that records what is applied; `fail` makes the next apply throw. */
function fakes(opts: { noAllowList?: boolean; captureOn?: boolean } = {}) {
  const applied: AllowListSpec[] = [];
  const captures: string[] = [];
  const seen: Array<{ peers?: number; dropped: Readonly<Record<string, number>> }> = [];
  let fail: Error | undefined;
  const filters = new PodFilters({
    allowList: {
      apply: async (spec: AllowListSpec): Promise<AllowListState> => {
        if (fail) {
          const e = fail;
          fail = undefined;
          throw e;
        }
        applied.push(spec);
        return { peers: [...spec.peers], dropped: { 'kmcast-vxlan': 3 }, ...(spec.capture ? { capture: CAPTURED } : {}) };
      },
      read: async () => ({ peers: ['10.9.0.7'], dropped: { 'kmcast-vxlan': 5 } }),
      remove: async (o?: { capture?: boolean }) => void captures.push(o?.capture ? 'remove all' : 'remove list'),
    },
    capture: {
      apply: async (spec) => {
        captures.push(`capture ${spec.device}`);
        return CAPTURED;
      },
      remove: async () => void captures.push('remove capture'),
    },
    vxlanPort: 7471,
    controlPort: 7470,
    noAllowList: opts.noAllowList ?? false,
    captureOn: opts.captureOn ?? true,
    observe: (o) => seen.push(o),
  });
  return { filters, applied, captures, seen, failNext: (e: Error) => (fail = e) };
}

test('the allow-list is applied when the peers change or a read-back is due, the capture only once the overlay is up', async () => {
  const { filters, applied, seen } = fakes();
  assert.deepEqual(await filters.inherited(), ['10.9.0.7']);
  await filters.sync(['10.9.0.3'], false, { withCapture: true });
  assert.equal(applied.length, 1);
  assert.equal(applied[0]!.capture, undefined, 'no capture before vx0 exists');
  assert.equal(applied[0]!.controlPort, 7470, 'no key: the control port is filtered too');
  await filters.sync(['10.9.0.3'], false);
  assert.equal(applied.length, 1, 'the same peers: nothing applied');
  assert.equal(await filters.overlayUp(TARGET, ['10.9.0.3'], true), true);
  assert.deepEqual(applied[1], { vxlanPort: 7471, controlPort: undefined, peers: ['10.9.0.3'], capture: TARGET });
  await filters.sync(['10.9.0.3'], true, { withCapture: true });
  assert.equal(applied.length, 2, 'capture read back already');
  filters.deviceRecreated();
  await filters.sync(['10.9.0.3'], true);
  assert.equal(applied.length, 2, 'the peers pass does not carry the capture');
  await filters.sync(['10.9.0.3'], true, { withCapture: true });
  assert.equal(applied.length, 3, 'a re-created vx0: the capture is applied again');
  filters.invalidate();
  await filters.sync(['10.9.0.3'], true);
  assert.equal(applied.length, 4, 'the periodic resync reads the list back');
  assert.deepEqual(filters.status('eth0'), {
    allowList: { installed: true, peers: 1 },
    capture: { path: 'nft-netdev-egress', underlay: 'eth0', installed: true, forwarded: 7, forwarded6: 0, icmp6Dropped: 0 },
  });
  await filters.refreshCounters();
  assert.deepEqual(seen.at(-1), { dropped: { 'kmcast-vxlan': 5 } });
  assert.equal(seen[0]!.peers, 1);
  await filters.quiesce(true);
  assert.deepEqual(applied.at(-1), { vxlanPort: 7471, controlPort: undefined, peers: [] });
});

test('a failed apply: not installed; a start keeps its KmcastError, a pass gets it wrapped', async () => {
  const { filters, failNext } = fakes();
  failNext(new KmcastError('nft: exit 3'));
  await assert.rejects(filters.sync(['10.9.0.3'], false, { initial: true }), (e: unknown) => e instanceof KmcastError && e.message === 'nft: exit 3');
  assert.equal(filters.status('eth0').allowList?.installed, false);
  failNext(new Error('Operation not permitted'));
  await assert.rejects(filters.sync(['10.9.0.3'], false), /sync admission allow-list: Operation not permitted/);
  await filters.sync(['10.9.0.3'], false);
  assert.equal(filters.status('eth0').allowList?.installed, true, 'the next pass installs it');
});

test('--insecure-no-allowlist: the capture alone; --capture off: a capture left behind is removed', async () => {
  const insecure = fakes({ noAllowList: true });
  assert.deepEqual(await insecure.filters.inherited(), []);
  await insecure.filters.sync(['10.9.0.3'], false);
  assert.equal(await insecure.filters.overlayUp(TARGET, [], false), true);
  await insecure.filters.sync(['10.9.0.3'], false, { withCapture: true });
  assert.deepEqual(insecure.applied, [], 'no allow-list');
  assert.deepEqual(insecure.captures, ['capture vx0'], 'the capture once, then read back');
  await insecure.filters.quiesce(false);
  await insecure.filters.remove();
  assert.deepEqual(insecure.captures, ['capture vx0', 'remove capture']);
  const off = fakes({ captureOn: false });
  assert.equal(await off.filters.overlayUp(TARGET, [], false), false);
  assert.deepEqual(off.captures, ['remove capture']);
  await off.filters.remove();
  assert.deepEqual(off.captures.at(-1), 'remove all');
});
