import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseGatewayConfig } from '../../../src/gateway/config.js';
import { DEMO_GATEWAY_ARGS, demoGatewayArgs } from '../../../src/lab/demo-gateway.js';

test('the gateway demo: IPv4 groups alone, or with --ipv6 the IPv6 ones beside them, every entry one the agent takes', () => {
  assert.equal(demoGatewayArgs(false), DEMO_GATEWAY_ARGS);
  for (const ipv6 of [false, true]) {
    const args = demoGatewayArgs(ipv6);
    const g = parseGatewayConfig({ gatewayInterface: args[1], gatewayGroup: [args[3]!] }, ['kmcast-peers.default.svc.cluster.local']);
    assert.deepEqual(
      g?.groups.map((x) => `${x.prefix}=${x.direction}`),
      [
        '239.1.1.0/24=in',
        '239.2.2.2/32=out',
        '224.0.0.251/32=both',
        ...(ipv6 ? ['ff05::1:0/112=in', 'ff05::2:2/128=out'] : []),
      ],
    );
  }
});
