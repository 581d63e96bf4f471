/**
 * The limits every kmcast HTTP(S) listener applies (the webhook's, the agents'): a connection cap
 * and deadlines on a request's headers, on the whole request and on an idle keep-alive, so that
 * slow or idle clients cannot hold the server's sockets. One implementation for all of them.
 */
import type { Server } from 'node:http';

export interface HttpLimits {
  /** Concurrent connections; more are closed at once (node's net.Server.maxConnections). */
  readonly maxConnections: number;
  /** The request line and headers must arrive within this (ms) of the connection's start. */
  readonly headersTimeoutMs: number;
  /** The whole request must arrive within this (ms). */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (ms). */
  readonly keepAliveTimeoutMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { maxConnections: 256, headersTimeoutMs: 10_000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000 };

/**
 * The createServer options the limits need: node checks the header and request deadlines every
 * connectionsCheckingInterval (30 s by default), far longer than the deadlines themselves.
 */
export function httpServerOptions(limits: Partial<HttpLimits> = {}): { connectionsCheckingInterval: number } {
  const l = { ...DEFAULT_HTTP_LIMITS, ...limits };
  return { connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(l.headersTimeoutMs / 2))) };
}

/** Applies `limits` (defaults for what is not given) to an http or https server made with httpServerOptions. */
export function applyHttpLimits(server: Server, limits: Partial<HttpLimits> = {}): HttpLimits {
  const l = { ...DEFAULT_HTTP_LIMITS, ...limits };
  server.headersTimeout = l.headersTimeoutMs;
  server.requestTimeout = Math.max(l.requestTimeoutMs, l.headersTimeoutMs);
  server.keepAliveTimeout = l.keepAliveTimeoutMs;
  server.maxConnections = l.maxConnections;
  return l;
}
