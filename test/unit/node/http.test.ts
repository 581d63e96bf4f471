import assert from 'node:assert/strict';
import { test } from 'node:test';
import { podRoute, startNodeHttp } from '../../../src/node/http.js';
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
  const server = await startNodeHttp('127.0.0.1', 0, { metrics: new NodeMetrics(), ready: () => false, status: async () => Promise.resolve({} as NodeStatus), pod });
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
