import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIperfLoss, parseIperfSent } from '../../../src/lab/iperf.js';

// Recorded from iperf 2.1.8 (client, then server with -e).
const CLIENT = `------------------------------------------------------------
[  1] local 192.168.9.1 port 55967 connected with 239.5.5.5 port 5001
[ ID] Interval       Transfer     Bandwidth
[  1] 0.0000-2.0011 sec   196 KBytes   801 Kbits/sec
[  1] Sent 2004 datagrams
`;
const SERVER = `[ ID] Interval            Transfer     Bandwidth        Jitter   Lost/Total  Latency avg/min/max/stdev PPS  Rx/inP  NetPwr
[  1] 0.0000-2.0011 sec   196 KBytes   801 Kbits/sec   0.003 ms 0/2003 (0%) 0.007/0.001/0.186/0.006 ms 1001 pps 2003/0(0) pkts 13517
[  1] 0.0000-2.0011 sec   190 KBytes   801 Kbits/sec   0.003 ms 12/2003 (0.6%) 0.007/0.001/0.186/0.006 ms 1001 pps 2003/0(0) pkts 13517
`;

test('iperf2 output: datagrams sent, and the last lost/total of a server report', () => {
  assert.equal(parseIperfSent(CLIENT), 2004);
  assert.equal(parseIperfSent('connect failed: Network is unreachable'), undefined);
  assert.deepEqual(parseIperfLoss(SERVER), { lost: 12, total: 2003 });
  assert.deepEqual(parseIperfLoss(SERVER.split('\n').slice(0, 2).join('\n')), { lost: 0, total: 2003 });
  assert.equal(parseIperfLoss('Server listening on UDP port 5001'), undefined);
});
