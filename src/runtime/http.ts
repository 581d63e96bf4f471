/**
 * The agents' HTTP endpoints: /metrics, /healthz, /readyz, /status, shared by the sidecar agent
 * and the node agent; a caller's `route` serves what only it has (the node agent's /v1/pods/<ip>).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { HttpLimits } from '../net/http-limits.js';
import { applyHttpLimits, httpServerOptions } from '../net/http-limits.js';

/** What `route` answers: a status code, a body and its content type. */
export interface HttpReply {
  readonly code: number;
  readonly body: string;
  readonly type?: string;
}

export interface HttpSources<S = unknown> {
  readonly metrics: { readonly registry: Registry };
  /** Refreshes gauges read from the kernel (drop counters) before /metrics is rendered. */
  beforeScrape?(): Promise<void>;
  ready(): boolean;
  status(): Promise<S>;
  /** Answers paths the common endpoints do not (undefined: not found). */
  route?(path: string): Promise<HttpReply | undefined>;
  /** Appended to the 404 text's list of endpoints. */
  readonly moreEndpoints?: string;
  /** Refuses a request before it is served (undefined: serve it); `remote` is the client's address. */
  refuse?(path: string, remote: string | undefined): HttpReply | undefined;
}

export async function handle<S>(req: IncomingMessage, res: ServerResponse, src: HttpSources<S>): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const send = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
    res.writeHead(code, { 'content-type': type });
    res.end(body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
  const refused = src.refuse?.(path, req.socket.remoteAddress);
  if (refused) return send(refused.code, refused.body, refused.type);
  const extra = await src.route?.(path);
  if (extra) return send(extra.code, extra.body, extra.type);
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
      return send(404, `not found: try /status, /metrics, /healthz, /readyz${src.moreEndpoints ? `, ${src.moreEndpoints}` : ''}\n`);
  }
}

/** Listens on host:port with the shared connection cap and deadlines (src/net/http-limits.ts). */
export async function startHttp<S>(host: string, port: number, src: HttpSources<S>, limits: Partial<HttpLimits> = {}): Promise<Server> {
  const server = createServer(httpServerOptions(limits), (req, res) => {
    handle(req, res, src).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
  applyHttpLimits(server, limits);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host || undefined, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
