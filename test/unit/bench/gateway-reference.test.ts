import assert from 'node:assert/strict';
import { test } from 'node:test';
import { referenceGatewayScript } from '../../../bench/lib/gateway-reference.js';
import type { GatewayReferenceSpec } from '../../../bench/lib/gateway-reference.js';
import { parseGatewayGroups } from '../../../src/gateway/groups.js';
import { renderGateway } from '../../../src/gateway/nft.js';

/** The body lines of chain `name` in an `nft -f` script, trimmed. */
function chainLines(script: string, name: string): string[] {
  const lines = script.split('\n').map((l) => l.trim());
  const start = lines.indexOf(`chain ${name} {`);
  assert.ok(start >= 0, `no chain ${name}`);
  return lines.slice(start + 1, lines.indexOf('}', start));
}

const LAN_IP = '192.168.250.1';
const LAN_MAC = '0A:70:51:49:3C:CB';

function both(o: { members: string[]; rate: number; rateTotal: number; minTtl: number }): { kmcast: string; hand: string } {
  const spec: GatewayReferenceSpec = {
    node: { index: 1, netns: 'kmcx-n1', style: 'calico', underlayIp: '172.31.1.2', podCidr: '10.244.1.0/24' },
    lan: { node: 1, netns: 'kmcx-n1', ifname: 'kmclan', ip: LAN_IP, port: 'kmcl1' },
    range: '239.255.72.0/24',
    group: '239.255.72.1',
    device: 'kmcvx100',
    localMembers: o.members,
    pods: ['10.244.1.11', '10.244.2.11'],
    rate: o.rate,
    rateTotal: o.rateTotal,
    minTtl: o.minTtl,
  };
  const kmcast = renderGateway({
    vni: 100,
    device: 'kmcvx100',
    delivery: 'kmcdr100',
    lan: 'kmclan',
    lanIp: LAN_IP,
    lanMac: LAN_MAC,
    members: o.members,
    pods: spec.pods,
    otherGatewayIps: [],
    otherGatewayMacs: [],
    groups: parseGatewayGroups(['239.255.72.0/24=in']),
    snat: true,
    minTtl: o.minTtl,
    rate: o.rate,
    rateTotal: o.rateTotal,
    active: true,
  });
  return { kmcast, hand: referenceGatewayScript(spec, LAN_IP, LAN_MAC) };
}

// The hand-built gateway path is written independently of src/gateway/nft.ts on purpose; this
// says when the two drift apart, so that the bench's reference is updated with the gateway.
test('the hand-built inbound chains have the rules kmcast renders, with and without limits', () => {
  for (const o of [
    { members: [], rate: 0, rateTotal: 0, minTtl: 1 },
    { members: ['kmcv1', 'kmcv2'], rate: 100, rateTotal: 400, minTtl: 2 },
    { members: ['kmcv1'], rate: 10_000, rateTotal: 0, minTtl: 1 },
  ]) {
    const { kmcast, hand } = both(o);
    for (const chain of ['lan-in', 'in-drop-rate', 'in-drop-ttl', 'in-drop-loop', 'in-drop-total', 'in-drop-full']) {
      assert.deepEqual(chainLines(hand, chain), chainLines(kmcast, chain), `${chain} with ${JSON.stringify(o)}`);
    }
  }
});

test('the hand-built table names its own table, the gateway MAC in lower case, and only the inbound sets', () => {
  const { hand } = both({ members: [], rate: 0, rateTotal: 0, minTtl: 1 });
  assert.match(hand, /^table netdev kmcbench-gw\ndelete table netdev kmcbench-gw\n/);
  assert.match(hand, /set gw-macs \{ type ether_addr; elements = \{ 0a:70:51:49:3c:cb \}; \}/);
  assert.match(hand, /set in-groups \{ type ipv4_addr; flags interval; elements = \{ 239\.255\.72\.0\/24 \}; \}/);
  assert.doesNotMatch(hand, /out-/);
  assert.doesNotMatch(hand, /limit rate/);
});
