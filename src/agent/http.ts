/** The agent's HTTP endpoints: /metrics, /healthz, /readyz, /status. */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AgentMetrics } from './metrics.js';
import type { AgentStatus } from './status-types.js';

export interface HttpSources {
  readonly metrics: AgentMetrics;
  /** Refreshes gauges read from the kernel (drop counters) before /metrics is rendered. */
  beforeScrape?(): Promise<void>;
  ready(): boolean;
  status(): Promise<AgentStatus>;
}

export async function handle(req: IncomingMessage, res: ServerResponse, src: HttpSources): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const send = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
    res.writeHead(code, { 'content-type': type });
    res.end(body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
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
      return send(404, 'not found: try /status, /metrics, /healthz, /readyz\n');
  }
}

export async function startHttp(host: string, port: number, src: HttpSources): Promise<Server> {
  const server = createServer((req, res) => {
    handle(req, res, src).catch((err: unknown) => {
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
