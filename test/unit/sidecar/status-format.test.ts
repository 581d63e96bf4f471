import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchAgentStatus, formatAge, formatStatus, formatTable, parseAgentStatus, statusEndpoint, StatusUnavailableError } from '../../../src/sidecar/status-format.js';
import type { AgentStatus } from '../../../src/sidecar/status-types.js';
import { agentStatusFixture } from '../../support/agent-status.js';

const NOW = new Date('2026-01-01T12:00:00.000Z');
const ago = (ms: number): string => new Date(NOW.getTime() - ms).toISOString();

/** A status as the agent serves it: three peers in different states, two drop reasons. */
function fixture(over: Partial<AgentStatus> = {}): AgentStatus {
  return agentStatusFixture({
    peers: [
      { ip: '10.244.2.10', state: 'alive', lastSeen: ago(400), groups: ['239.1.1.1', '239.1.1.2'], sources: ['dns', 'control'] },
      { ip: '10.244.2.9', state: 'alive', lastSeen: ago(1200), groups: [], sources: ['dns'] },
      { ip: '10.244.3.12', state: 'expired', lastSeen: ago(125_000), groups: ['239.1.1.1'], sources: ['dns'] },
      { ip: '10.244.3.13', state: 'pending', lastSeen: null, groups: [], sources: ['static'] },
    ],
    localGroups: ['239.1.1.1'],
    entries: { fdb: 3, mdb: 2, routes: 2 },
    allowList: { installed: true, peers: 4 },
    drops: { unregistered: 17, control: { replay: 2, bad_mac: 5 } },
    ...over,
  });
}

describe('formatAge', () => {
  it('shows tenths under 10 s, then seconds, minutes, hours, days', () => {
    assert.equal(formatAge(ago(400), NOW), '0.4s ago');
    assert.equal(formatAge(ago(9_949), NOW), '9.9s ago');
    assert.equal(formatAge(ago(12_300), NOW), '12s ago');
    assert.equal(formatAge(ago(184_000), NOW), '3m04s ago');
    assert.equal(formatAge(ago((2 * 3600 + 5 * 60) * 1000), NOW), '2h05m ago');
    assert.equal(formatAge(ago(3 * 86_400_000), NOW), '3d ago');
  });
  it('handles never, clock skew and garbage', () => {
    assert.equal(formatAge(null, NOW), 'never');
    assert.equal(formatAge(ago(-5000), NOW), 'just now');
    assert.equal(formatAge('yesterday', NOW), '? (yesterday)');
  });
});

describe('statusEndpoint', () => {
  it('accepts a base URL, a /status URL, host:port and :port', () => {
    assert.equal(statusEndpoint('http://127.0.0.1:9470'), 'http://127.0.0.1:9470/status');
    assert.equal(statusEndpoint('http://127.0.0.1:9470/'), 'http://127.0.0.1:9470/status');
    assert.equal(statusEndpoint('http://10.0.0.1:9999/status'), 'http://10.0.0.1:9999/status');
    assert.equal(statusEndpoint('localhost:9470'), 'http://localhost:9470/status');
    assert.equal(statusEndpoint(':9470'), 'http://127.0.0.1:9470/status');
  });
});

describe('parseAgentStatus', () => {
  it('returns a valid document unchanged', () => {
    const doc = JSON.parse(JSON.stringify(fixture())) as unknown;
    assert.equal(parseAgentStatus(doc, 'u'), doc);
  });
  it('names the missing field and the source', () => {
    const rest: Record<string, unknown> = { ...fixture() };
    delete rest.peers;
    assert.throws(
      () => parseAgentStatus(rest, 'http://x/status'),
      (e: unknown) => e instanceof StatusUnavailableError && /http:\/\/x\/status/.test(e.message) && /"peers"/.test(e.message),
    );
    assert.throws(() => parseAgentStatus({ ...fixture(), vni: '4242' }, 'u'), /"vni"/);
    assert.throws(() => parseAgentStatus({ ...fixture(), peers: [{ ip: '1.2.3.4' }] }, 'u'), /"state"/);
    assert.throws(() => parseAgentStatus(['not', 'an', 'object'], 'u'), /not a JSON object/);
  });
});

describe('formatTable', () => {
  it('pads every column to its widest cell', () => {
    const t = formatTable(
      ['A', 'BB'],
      [
        ['xxx', 'y'],
        ['z', 'wwww'],
      ],
    );
    assert.deepEqual(t.split('\n'), ['A    BB', 'xxx  y', 'z    wwww']);
  });
});

describe('formatStatus', () => {
  const text = formatStatus(fixture(), NOW);
  const lines = text.split('\n');

  it('has a header with pod IP, vni/port, replication, ready, authentication and allow-list', () => {
    assert.match(lines[0] ?? '', /pod 10\.244\.1\.11 .*vni 4242 .*vxlan port 7471 .*control port 7470/);
    assert.match(lines[1] ?? '', /ready: yes .*replication: selective .*authenticated: yes .*allow-list: installed \(4 peers\)/);
    assert.doesNotMatch(text, /warning:/);
  });

  it('lists peers problems first, with state, age, source and groups', () => {
    assert.match(text, /peers: 4 \(2 alive\)/);
    const peerLines = lines.filter((l) => /^\s+10\.244\./.test(l));
    assert.deepEqual(
      peerLines.map((l) => l.trim().split(/\s+/)[0]),
      ['10.244.3.12', '10.244.3.13', '10.244.2.9', '10.244.2.10'],
    );
    const row = (ip: string): string => peerLines.find((l) => l.includes(`${ip} `)) ?? '';
    assert.match(row('10.244.2.10'), /alive\s+0\.4s ago\s+dns,control\s+239\.1\.1\.1,239\.1\.1\.2$/);
    assert.match(row('10.244.3.12'), /expired\s+2m05s ago\s+dns\s+239\.1\.1\.1$/);
    assert.match(row('10.244.3.13'), /pending\s+never\s+static\s+-$/);
  });

  it('shows local groups, entry counts and drops by reason', () => {
    assert.match(text, /^local groups: 239\.1\.1\.1$/m);
    assert.match(text, /^entries: fdb 3 {2}mdb 2 {2}routes 2$/m);
    assert.match(text, /^drops: unregistered groups 17 {2}control: bad_mac 5 {2}replay 2$/m);
  });

  it('warns about a missing key or allow-list and shows an empty agent plainly', () => {
    const t = formatStatus(
      fixture({
        authenticated: false,
        ready: false,
        allowList: { installed: false, peers: 0 },
        peers: [],
        localGroups: [],
        drops: { unregistered: 0, control: {} },
      }),
      NOW,
    );
    assert.match(t, /ready: no/);
    assert.match(t, /allow-list: NOT installed/);
    assert.match(t, /warning: no --key-file/);
    assert.match(t, /warning: no allow-list/);
    assert.match(t, /peers: 0 \(0 alive\)\n\n/);
    assert.match(t, /local groups: -/);
    assert.match(t, /control: none/);
  });
});

describe('fetchAgentStatus', () => {
  let server: Server;
  let base = '';
  let answer: { status: number; body: string } = { status: 200, body: '' };

  before(async () => {
    server = createServer((req, res) => {
      res.writeHead(req.url === '/status' ? answer.status : 404, { 'content-type': 'application/json' });
      res.end(req.url === '/status' ? answer.body : '{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('returns the parsed document', async () => {
    answer = { status: 200, body: JSON.stringify(fixture()) };
    const s = await fetchAgentStatus(base);
    assert.deepEqual(s, JSON.parse(answer.body));
  });

  it('reports HTTP errors and non-JSON with the URL and the hint', async () => {
    answer = { status: 503, body: '{}' };
    await assert.rejects(fetchAgentStatus(base), (e: unknown) => {
      assert.ok(e instanceof StatusUnavailableError);
      assert.match(e.message, new RegExp(`${base}/status: HTTP 503; is the agent running\\? its --http address\\?`));
      return true;
    });
    answer = { status: 200, body: '<html>' };
    await assert.rejects(fetchAgentStatus(base), /not JSON/);
  });

  it('reports an unreachable agent with the URL and the hint', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(fetchAgentStatus(`http://127.0.0.1:${port}`), (e: unknown) => {
      assert.ok(e instanceof StatusUnavailableError);
      assert.match(e.message, new RegExp(`^read agent status from http://127\\.0\\.0\\.1:${port}/status: ECONNREFUSED; is the agent running\\?`));
      return true;
    });
  });
});

describe('formatStatus: apps that name eth0', () => {
  it('shows the groups per interface and the capture path; older agents show neither', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const on = formatStatus(
      fixture({
        groupsByInterface: { vx0: ['239.1.1.1'], eth0: ['239.1.1.9'] },
        capture: { path: 'nft-netdev-egress', underlay: 'eth0', installed: true, forwarded: 12 },
      }),
      now,
    );
    assert.match(on, /\n {2}by interface: vx0 239\.1\.1\.1 {2}eth0 239\.1\.1\.9\n/);
    assert.match(on, /\ncapture: nft-netdev-egress on eth0 -> vx0, installed, 12 frames moved\n/);
    const off = formatStatus(fixture({ capture: { path: 'off', underlay: 'eth0', installed: false, forwarded: 0 } }), now);
    assert.match(off, /\ncapture: off \(multicast and broadcast sent out of eth0 stay there\)\n/);
    assert.doesNotMatch(formatStatus(fixture(), now), /capture:|by interface/);
  });

  it('IPv6 underlay: VXLAN packets too long for eth0 are a warning with the way out; none, no line', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const base = fixture({ podIp: 'fd00:10:244:1::11' });
    const out = formatStatus({ ...base, drops: { ...base.drops, underlayTooLong: 3 } }, now);
    assert.match(
      out,
      /\nWARNING: 3 VXLAN packets were longer than eth0 and lost \(VXLAN over IPv6 is never fragmented\): an app fragments its datagrams at eth0's own MTU \(IPV6_PMTUDISC_OMIT\).* send through vx0/,
    );
    assert.doesNotMatch(formatStatus({ ...base, drops: { ...base.drops, underlayTooLong: 0 } }, now), /WARNING: \d+ VXLAN/);
  });

  it('dual stack: the pod IPv6 address, IPv6 groups per interface, IPv6 frames moved and vx0 ICMPv6 kept home', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const out = formatStatus(
      fixture({
        podIp6: 'fd00:10:244:2::11',
        localGroups: ['ff02::fb', 'ff05::1:3'],
        groupsByInterface: { vx0: [], eth0: ['ff02::fb', 'ff05::1:3'] },
        capture: { path: 'nft-netdev-egress', underlay: 'eth0', installed: true, forwarded: 12, forwarded6: 5, icmp6Dropped: 4, icmp6Refused: 2 },
      }),
      now,
    );
    assert.match(out, / fd00:10:244:2::11 {2}underlay eth0/);
    assert.match(out, /\n {2}by interface: vx0 - {2}eth0 ff02::fb,ff05::1:3\n/);
    assert.match(out, /\ncapture: nft-netdev-egress on eth0 -> vx0, installed, 12 frames moved \(5 IPv6\), 4 ICMPv6 of vx0 kept off the overlay, 2 ICMPv6 from the overlay refused\n/);
  });
});
