/** The node agent's HTTP endpoints: /metrics, /healthz, /readyz, /status and /v1/pods/<ip>. */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { isIpv4 } from '../net/ipv4.js';
import type { PodProgramStatus } from './api.js';
import { POD_STATUS_PATH } from './api.js';
import type { NodeMetrics } from './metrics.js';
import type { NodeStatus } from './status-types.js';

export interface NodeHttpSources {
  readonly metrics: NodeMetrics;
  beforeScrape?(): Promise<void>;
  ready(): boolean;
  status(): Promise<NodeStatus>;
  /** The pod's program status, undefined when the agent does not know the IP (404). */
  pod(ip: string): Promise<PodProgramStatus | undefined>;
}

export async function handleNode(req: IncomingMessage, res: ServerResponse, src: NodeHttpSources): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const send = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
    res.writeHead(code, { 'content-type': type });
    res.end(body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
  if (path.startsWith(POD_STATUS_PATH)) {
    const ip = decodeURIComponent(path.slice(POD_STATUS_PATH.length));
    if (!isIpv4(ip)) return send(400, `not an IPv4 address: ${JSON.stringify(ip)}\n`);
    const st = await src.pod(ip);
    return st ? send(200, `${JSON.stringify(st)}\n`, 'application/json') : send(404, `unknown pod ${ip}\n`);
  }
  switch (path) {
    case '/healthz':
      return send(200, 'ok\n');
    case '/readyz':
      return src.ready() ? send(200, 'ready\n') : send(503, 'not ready\n');
    case '/metrics':
      await src.beforeScrape?.();
      return send(200, await src.metrics.registry.metrics(), src.metrics.registry.contentType);
    case '/status':
      return send(200, `${JSON.stringify(await src.status(), null, 2)}\n`, 'application/json');
    default:
      return send(404, `not found: try /status, /metrics, /healthz, /readyz, ${POD_STATUS_PATH}<podIP>\n`);
  }
}

export async function startNodeHttp(host: string, port: number, src: NodeHttpSources): Promise<Server> {
  const server = createServer((req, res) => {
    handleNode(req, res, src).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host || undefined, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
