/** The node agent's HTTP endpoints: the agents' common ones, plus /v1/pods/<ip> for `kmcast wait`. */
import type { Server } from 'node:http';
import { startHttp } from '../agent/http.js';
import type { HttpReply } from '../agent/http.js';
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

/** GET /v1/pods/<ip>: 200 with the PodProgramStatus, 404 for an IP the agent does not know. */
export async function podRoute(path: string, pod: NodeHttpSources['pod']): Promise<HttpReply | undefined> {
  if (!path.startsWith(POD_STATUS_PATH)) return undefined;
  let ip: string;
  try {
    ip = decodeURIComponent(path.slice(POD_STATUS_PATH.length));
  } catch {
    ip = path.slice(POD_STATUS_PATH.length);
  }
  if (!isIpv4(ip)) return { code: 400, body: `not an IPv4 address: ${JSON.stringify(ip)}\n` };
  const st = await pod(ip);
  return st ? { code: 200, body: `${JSON.stringify(st)}\n`, type: 'application/json' } : { code: 404, body: `unknown pod ${ip}\n` };
}

export async function startNodeHttp(host: string, port: number, src: NodeHttpSources): Promise<Server> {
  return await startHttp(host, port, { ...src, route: (path) => podRoute(path, (ip) => src.pod(ip)), moreEndpoints: `${POD_STATUS_PATH}<podIP>` });
}
