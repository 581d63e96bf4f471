import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { isLoopback, podRoute, refuseOperatorPath, startNodeHttp } from '../../../src/node/http.js';
import { NodeMetrics } from '../../../src/node/metrics.js';
import type { PodProgramStatus } from '../../../src/node/api.js';
import type { NodeStatus } from '../../../src/node/status-types.js';

const known: PodProgramStatus = { podIp: '10.244.1.2', programmed: true, domain: 'app.default.svc.cluster.local', hostVeth: 'kmcv1' };
const pod = async (ip: string): Promise<PodProgramStatus | undefined> => Promise.resolve(ip === known.podIp ? known : undefined);

test('/v1/pods/<ip>: 200 with the status, 404 unknown, 400 for what is not an IPv4 address', async () => {
  assert.deepEqual(JSON.parse((await podRoute('/v1/pods/10.244.1.2', pod))!.body), known);
  assert.equal((await podRoute('/v1/pods/10.244.1.9', pod))!.code, 404);
  assert.equal((await podRoute('/v1/pods/%E0%A4%A', pod))!.code, 400, 'a malformed escape is a bad request, not a 500');
  assert.equal((await podRoute('/v1/pods/evil', pod))!.code, 400);
  assert.equal(await podRoute('/status', pod), undefined, 'other paths fall through to the common endpoints');
});

test('the node agent serves the common endpoints and its pod route over real HTTP', async () => {
  const server = await startNodeHttp('127.0.0.1', 0, { metrics: new NodeMetrics(), ready: () => false, status: async () => Promise.resolve({} as NodeStatus), pod }, 'loopback');
  try {
    const addr = server.address();
    assert.ok(addr && typeof addr === 'object');
    const get = async (path: string): Promise<[number, string]> => {
      const r = await fetch(`http://127.0.0.1:${addr.port}${path}`);
      return [r.status, await r.text()];
    };
    assert.equal((await get('/healthz'))[0], 200);
    assert.equal((await get('/readyz'))[0], 503);
    assert.equal((await get('/v1/pods/10.244.1.2'))[0], 200);
    assert.match((await get('/metrics'))[1], /kmcast_node_/);
    const [code, body] = await get('/nope');
    assert.equal(code, 404);
    assert.match(body, /\/v1\/pods\/<podIP>/);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

const SOURCES = { metrics: new NodeMetrics(), ready: () => true, status: async () => Promise.resolve({ mode: 'node' } as NodeStatus), pod };

test('/status and /metrics: everyone on --status-http, loopback only on --http, nobody on --http beside --status-http', () => {
  for (const path of ['/status', '/metrics']) {
    assert.equal(refuseOperatorPath(path, '10.244.1.7', 'open'), undefined);
    assert.equal(refuseOperatorPath(path, '127.0.0.1', 'loopback'), undefined);
    assert.equal(refuseOperatorPath(path, '::ffff:127.0.0.9', 'loopback'), undefined);
    assert.equal(refuseOperatorPath(path, '::1', 'loopback'), undefined);
    assert.equal(refuseOperatorPath(path, '10.244.1.7', 'loopback')?.code, 403, `${path} from a pod`);
    assert.equal(refuseOperatorPath(path, '::ffff:192.168.1.20', 'loopback')?.code, 403, `${path} from a LAN host`);
    assert.equal(refuseOperatorPath(path, undefined, 'loopback')?.code, 403);
    assert.match(refuseOperatorPath(path, '127.0.0.1', 'none')!.body, /--status-http/);
  }
  for (const path of ['/v1/pods/10.244.1.2', '/healthz', '/readyz']) assert.equal(refuseOperatorPath(path, '10.244.1.7', 'none'), undefined, `${path} stays open`);
  assert.equal(isLoopback('127.5.6.7'), true);
  assert.equal(isLoopback('128.0.0.1'), false);
  assert.equal(isLoopback('::ffff:10.0.0.1'), false);
});

test('a client on 127.0.0.1 gets /status on a "none" listener refused, the pod route served', async () => {
  const server = await startNodeHttp('127.0.0.1', 0, SOURCES, 'none');
  try {
    const port = (server.address() as AddressInfo).port;
    assert.equal((await fetch(`http://127.0.0.1:${port}/status`)).status, 403);
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 403);
    assert.equal((await fetch(`http://127.0.0.1:${port}/v1/pods/10.244.1.2`)).status, 200);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

/** Opens a raw TCP connection that sends `send` and then nothing; resolves when the client saw it closed. */
function openConnection(port: number, send = ''): { socket: Socket; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1', () => {
    if (send) socket.write(send);
  });
  socket.on('error', () => undefined);
  return { socket, closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

const connections = (server: Server): Promise<number> => new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

async function until(what: string, fn: () => Promise<boolean>, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

test('the node listener caps connections and drops a client that never completes its request', async () => {
  const server = await startNodeHttp('127.0.0.1', 0, SOURCES, 'loopback', { maxConnections: 3, headersTimeoutMs: 300, requestTimeoutMs: 300, keepAliveTimeoutMs: 200 });
  const sockets: Socket[] = [];
  try {
    const port = (server.address() as AddressInfo).port;
    // Baseline: a well-behaved request is served.
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    await until('the kept-alive connection of the baseline ends', async () => (await connections(server)) === 0, 3000);
    // A client that starts its headers and never ends them, and one that sends nothing: the
    // server lets go of both within their deadlines (+ the check interval), well before 5 s.
    for (const send of ['GET /status HTTP/1.1\r\nHost: x\r\n', '']) {
      const c = openConnection(port, send);
      sockets.push(c.socket);
      await until(`the server holds the connection sending ${JSON.stringify(send)}`, async () => (await connections(server)) === 1, 2000);
      const took = await until(`the server drops the connection sending ${JSON.stringify(send)}`, async () => (await connections(server)) === 0, 2500);
      assert.ok(took < 2500, `dropped after ${took} ms`);
    }
    // Three silent connections hold the cap; a fourth is closed at once, by the cap.
    for (let i = 0; i < 3; i++) sockets.push(openConnection(port).socket);
    await until('three connections held', async () => (await connections(server)) === 3, 2000);
    const t1 = Date.now();
    const over = openConnection(port);
    sockets.push(over.socket);
    await Promise.race([over.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the connection over the cap of 3 is still open after 2 s')), 2000))]);
    assert.ok(Date.now() - t1 < 300, `the connection over the cap is closed at once, not by a deadline (${Date.now() - t1} ms)`);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    server.closeAllConnections();
  }
});
