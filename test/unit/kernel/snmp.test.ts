import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSnmp6 } from '../../../src/kernel/snmp.js';
import { fixture } from '../fixtures.js';

test('reads /proc/net/snmp6 as this kernel prints it; odd lines are skipped', () => {
  const text = fixture('iproute2/snmp6.txt');
  const c = parseSnmp6(text);
  assert.equal(c.get('Ip6FragFails'), Number(/^Ip6FragFails\s+(\d+)/m.exec(text)![1]));
  assert.ok(c.has('Icmp6InMsgs') && c.has('Udp6InDatagrams'));
  assert.equal(c.size, text.split('\n').filter((l) => l.trim()).length);
  assert.deepEqual([...parseSnmp6('Ip6FragFails 7\n\nnot a counter\nIp6FragOKs x\n')], [['Ip6FragFails', 7]]);
});
