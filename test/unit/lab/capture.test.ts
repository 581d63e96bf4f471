import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packetLines } from '../../../src/lab/capture.js';

test('packetLines keeps packets, not tcpdump messages', () => {
  const out = [
    'tcpdump: verbose output suppressed, use -v[v]... for full protocol decode',
    'listening on kmcl1, link-type EN10MB (Ethernet), snapshot length 262144 bytes',
    '06:01:06.204400 IP 192.168.250.1 > 239.1.1.1: igmp v2 report 239.1.1.1',
    '06:01:07.956298 IP 192.168.250.254 > 224.0.0.1: igmp query v2 [max resp time 10]',
    '',
    '2 packets captured',
    '3 packets received by filter',
    '0 packets dropped by kernel',
    '',
  ].join('\n');
  assert.deepEqual(packetLines(out), [
    '06:01:06.204400 IP 192.168.250.1 > 239.1.1.1: igmp v2 report 239.1.1.1',
    '06:01:07.956298 IP 192.168.250.254 > 224.0.0.1: igmp query v2 [max resp time 10]',
  ]);
  assert.deepEqual(packetLines(''), []);
});
