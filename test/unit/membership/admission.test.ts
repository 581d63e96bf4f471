import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admittedPeers } from '../../../src/membership/admission.js';

describe('allow-list admission', () => {
  const listed = ['10.0.0.3', '10.0.0.1'];
  const alive = ['10.0.0.2', '10.0.0.1'];
  it('with a key, VXLAN follows authenticated (alive) peers only, not DNS-listed ones; the control port stays open', () => {
    assert.deepEqual(admittedPeers({ keyed: true, listed, alive }), { vxlan: ['10.0.0.1', '10.0.0.2'], controlFiltered: false });
  });
  it('with a key, a restarted agent keeps what the previous one admitted during its grace period', () => {
    assert.deepEqual(admittedPeers({ keyed: true, listed, alive: [], inherited: ['10.0.0.7'] }), { vxlan: ['10.0.0.7'], controlFiltered: false });
  });
  it('without a key, both ports admit listed and alive source addresses', () => {
    assert.deepEqual(admittedPeers({ keyed: false, listed, alive }), { vxlan: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], controlFiltered: true });
  });
});
