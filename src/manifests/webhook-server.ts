/**
 * The webhook's HTTPS server: POST /mutate (AdmissionReview v1) and GET /healthz. The socket side
 * only; the decisions are in webhook.ts.
 */
import { createServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { applyHttpLimits, DEFAULT_HTTP_LIMITS, httpServerOptions } from '../net/http-limits.js';
import { handleAdmissionReview } from './webhook.js';
import type { HttpReply, WebhookOptions } from './webhook.js';

/** The API server sends at most 3 MiB per request; anything bigger is not an AdmissionReview. */
const MAX_BODY = 3 * 1024 * 1024;

export interface WebhookServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, reply: HttpReply): void {
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A client that closed its connection before the request was read: nothing to answer. */
class ClientGone extends Error {
  override readonly name = 'ClientGone';
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Keep draining without storing, so the client reads a clean 413 instead of a reset.
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks).toString('utf8')));
    // An aborted request emits 'error' (ECONNRESET, "aborted") or just 'close' before 'end'.
    req.on('error', (err: NodeJS.ErrnoException) => reject(new ClientGone(err.code ?? err.message)));
    req.on('close', () => {
      if (!req.complete) reject(new ClientGone('closed before the body was complete'));
    });
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, o: WebhookOptions, log: Logger): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://webhook');
  if (req.method === 'GET' && url.pathname === '/healthz') {
    send(res, { status: 200, body: { status: 'ok' } });
    return;
  }
  if (req.method !== 'POST' || url.pathname !== '/mutate') {
    send(res, { status: 404, body: { error: 'not found: POST /mutate or GET /healthz' } });
    return;
  }
  const text = await readBody(req);
  if (text === undefined) {
    send(res, { status: 413, body: { error: `read AdmissionReview: body larger than ${MAX_BODY} bytes` } });
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    send(res, { status: 400, body: { error: `read AdmissionReview: invalid JSON: ${(err as Error).message}` } });
    return;
  }
  const reply = handleAdmissionReview(body, o);
  const response = reply.body.response as { uid?: string; allowed?: boolean; patch?: string } | undefined;
  log.info({ status: reply.status, uid: response?.uid, allowed: response?.allowed, patched: Boolean(response?.patch) }, 'admission review');
  send(res, reply);
}

export interface ServerLimits {
  /** A connection that has not completed its TLS handshake by then is closed (node's default: 120 s). */
  readonly handshakeTimeoutMs?: number;
  /** Concurrent connections; more are closed at once. The API server needs few. */
  readonly maxConnections?: number;
}

export const DEFAULT_LIMITS: Required<ServerLimits> = { handshakeTimeoutMs: 5_000, maxConnections: DEFAULT_HTTP_LIMITS.maxConnections };

/** Starts the HTTPS server on host:port (port 0 picks a free one). */
export function startWebhookServer(
  tls: { cert: string | Buffer; key: string | Buffer },
  listen: { host?: string; port: number },
  o: WebhookOptions,
  log: Logger,
  limits: ServerLimits = {},
): Promise<WebhookServer> {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const server = createServer({ ...httpServerOptions(), cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', handshakeTimeout: lim.handshakeTimeoutMs }, (req, res) => {
    handle(req, res, o, log).catch((err: unknown) => {
      if (err instanceof ClientGone) {
        log.debug({ reason: err.message, remote: req.socket.remoteAddress }, 'client closed the connection before the request was read');
        res.destroy();
        return;
      }
      // A bug must cost one request, never the process the API server depends on.
      log.error({ err }, 'admission review failed');
      if (!res.headersSent) send(res, { status: 500, body: { error: `handle request: ${(err as Error).message}` } });
      else res.destroy();
    });
  });
  applyHttpLimits(server, { maxConnections: lim.maxConnections });
  // A client that never finishes the TLS handshake (a port scan, a raw TCP connection).
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug({ err: err.code ?? err.message, remote: socket.remoteAddress }, 'TLS handshake failed or timed out');
    socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
