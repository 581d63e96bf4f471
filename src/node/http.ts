/**
 * The node agent's HTTP endpoints: the agents' common ones, plus /v1/pods/<ip> for `kmcast wait`.
 *
 * Two audiences: member pods' `kmcast wait` (and the kubelet's probes) reach --http at the node's
 * address, so anything served there is served to every pod on the node and, on a gateway, to the
 * LAN. They need /v1/pods/<ip>, /healthz and /readyz. /status and /metrics name pods, VNIs, veths,
 * namespaces, groups and peers: the operator's, served on --status-http when it is set, and on
 * --http only to clients on the node's own loopback when it is not (`accessOf`).
 */
import type { Server } from 'node:http';
import { startHttp } from '../runtime/http.js';
import type { HttpReply } from '../runtime/http.js';
import type { HttpLimits } from '../net/http-limits.js';
import { isIpv4 } from '../net/ipv4.js';
import { canonicalIpv6, isIpv6 } from '../net/ipv6.js';
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

/** Paths only the operator's listener serves to anyone. */
export const OPERATOR_PATHS: readonly string[] = ['/status', '/metrics'];

/**
 * Who gets the operator paths on a listener: `open` everyone (--status-http), `loopback` clients
 * on 127.0.0.0/8 or ::1 only (--http without --status-http), `none` nobody (--http when
 * --status-http is set).
 */
export type OperatorAccess = 'open' | 'loopback' | 'none';

export function isLoopback(remote: string | undefined): boolean {
  if (remote === undefined) return false;
  const v4 = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
  return v4 === '::1' || (isIpv4(v4) && v4.startsWith('127.'));
}

/** 403 for an operator path the client may not read here, undefined to serve it. Pure. */
export function refuseOperatorPath(path: string, remote: string | undefined, access: OperatorAccess): HttpReply | undefined {
  if (access === 'open' || !OPERATOR_PATHS.includes(path)) return undefined;
  if (access === 'loopback' && isLoopback(remote)) return undefined;
  const where = access === 'none' ? 'on the --status-http address' : "only to clients on the node's loopback (or on --status-http, when set)";
  return { code: 403, body: `${path} is served ${where}; this address serves ${POD_STATUS_PATH}<podIP>, /healthz and /readyz\n` };
}

/** GET /v1/pods/<ip>: 200 with the PodProgramStatus, 404 for an IP the agent does not know. */
export async function podRoute(path: string, pod: NodeHttpSources['pod']): Promise<HttpReply | undefined> {
  if (!path.startsWith(POD_STATUS_PATH)) return undefined;
  let ip: string;
  try {
    ip = decodeURIComponent(path.slice(POD_STATUS_PATH.length));
  } catch {
    ip = path.slice(POD_STATUS_PATH.length);
  }
  if (!isIpv4(ip) && !isIpv6(ip)) return { code: 400, body: `not an IPv4 or IPv6 address: ${JSON.stringify(ip)}\n` };
  // An IPv6-only cluster's pods ask by their IPv6 address, in any spelling: the agent keys them canonically.
  const st = await pod(canonicalIpv6(ip) ?? ip);
  return st ? { code: 200, body: `${JSON.stringify(st)}\n`, type: 'application/json' } : { code: 404, body: `unknown pod ${ip}\n` };
}

/** The pod API listener's connection cap: every pod of a node polling at once fits well within it. */
export const NODE_HTTP_LIMITS: Partial<HttpLimits> = { maxConnections: 128 };

export async function startNodeHttp(host: string, port: number, src: NodeHttpSources, access: OperatorAccess, limits: Partial<HttpLimits> = NODE_HTTP_LIMITS): Promise<Server> {
  return await startHttp(
    host,
    port,
    {
      ...src,
      route: (path) => podRoute(path, (ip) => src.pod(ip)),
      moreEndpoints: `${POD_STATUS_PATH}<podIP>`,
      refuse: (path, remote) => refuseOperatorPath(path, remote, access),
    },
    limits,
  );
}
