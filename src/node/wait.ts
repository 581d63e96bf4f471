/**
 * `kmcast wait`, the unprivileged init container of node mode: polls the node agent on its own
 * node (`GET /v1/pods/<podIP>`) until the agent reports the pod programmed, so the app never
 * starts before its multicast works.
 *
 * What it has to survive, learned from the istio-cni and linkerd-cni validation init containers:
 * - the pod started before the agent (a new node, a DaemonSet rollout): connection refused or a
 *   404 for a while is normal, not an error: keep waiting;
 * - an agent restart in the middle: the same, the next poll finds the new agent;
 * - a node reboot: the kubelet re-runs init containers in the new sandbox with a new status, and
 *   the wait starts from scratch against whatever agent is up by then;
 * - an agent that hangs or misbehaves (or another program on the port): every request has a
 *   deadline and a bounded body, so the wait never blocks on one answer or fills its memory.
 *
 * The decisions (what an answer means, what to print and when, when to give up) are pure and
 * tested with a fake clock; `fetchPodStatus` is the only part that touches the network.
 */
import { isIPv6 } from 'node:net';
import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { NODE_HTTP_PORT, podStatusPath } from './api.js';
import type { NotProgrammedReason, PeerNodesStatus, PodProgramStatus } from './api.js';

/** An answer bigger than this is not a PodProgramStatus (the real one is a few hundred bytes). */
export const MAX_STATUS_BYTES = 64 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 2000;
/** Progress is printed when the state changes, and at least this often while it does not. */
export const PROGRESS_EVERY_MS = 10_000;

/** What one poll saw. `state` names the condition for the progress lines. */
export type Observation =
  | { readonly state: 'programmed'; readonly status: PodProgramStatus }
  | { readonly state: NotProgrammedReason; readonly status: PodProgramStatus }
  | { readonly state: 'unknown_pod' }
  | { readonly state: 'unreachable'; readonly detail: string }
  | { readonly state: 'bad_answer'; readonly detail: string };

const REASONS: readonly NotProgrammedReason[] = ['not_member', 'not_local', 'no_netns', 'pending', 'peers', 'multiple_domains', 'ip_conflict'];

/** Interprets one HTTP answer of the agent (status code and body text) for `podIp`. */
export function interpretAnswer(podIp: string, statusCode: number, body: string): Observation {
  if (statusCode === 404) return { state: 'unknown_pod' };
  if (statusCode !== 200) return { state: 'bad_answer', detail: `HTTP ${statusCode}` };
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { state: 'bad_answer', detail: 'the answer is not JSON' };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return { state: 'bad_answer', detail: 'the answer is not a JSON object' };
  const s = json as Partial<PodProgramStatus>;
  if (typeof s.programmed !== 'boolean') return { state: 'bad_answer', detail: 'the answer has no boolean "programmed"' };
  if (s.podIp !== undefined && s.podIp !== podIp) return { state: 'bad_answer', detail: `the answer is about pod ${String(s.podIp)}, not ${podIp}` };
  const status = s as PodProgramStatus;
  if (s.programmed) return { state: 'programmed', status };
  const reason = REASONS.includes(s.reason as NotProgrammedReason) ? (s.reason as NotProgrammedReason) : 'pending';
  return { state: reason, status };
}

export interface WaitTarget {
  /** The agent's base URL, e.g. http://10.0.0.5:9471. */
  readonly agent: string;
  readonly podIp: string;
}

/** What the pod waits for and how to fix it, one line per state. */
export function describe(o: Observation, t: WaitTarget): string {
  switch (o.state) {
    case 'programmed':
      return `pod ${t.podIp} is programmed${o.status.domain ? ` in domain ${o.status.domain}` : ''}${o.status.hostVeth ? ` (host veth ${o.status.hostVeth})` : ''}${peersDone(o.status.peers)}; starting the app`;
    case 'not_member':
      return `the node agent lists pod ${t.podIp} in no domain yet: is the pod selected by the domain's headless Service with publishNotReadyAddresses: true, and is that Service in the kmcast-node DaemonSet's --service list?`;
    case 'not_local':
      return `the node agent finds pod ${t.podIp} in domain ${o.status.domain ?? '?'} but its route leads to no veth on this node: is KMCAST_NODE_IP this pod's status.hostIP?`;
    case 'no_netns':
      return `the node agent cannot open the network namespace of pod ${t.podIp}: does the kmcast-node DaemonSet mount /var/run/netns (mountPropagation: HostToContainer)?`;
    case 'multiple_domains':
      return `the node agent refuses pod ${t.podIp}: more than one domain lists it (${o.status.domain ?? '?'}), so none captures it; remove it from all but one domain's Service (check who can edit their Endpoints/EndpointSlices)`;
    case 'ip_conflict':
      return `the node agent refuses pod ${t.podIp}: the veth it was first found on still exists and another pod's veth claims its IP; see kmcast status --node`;
    case 'pending':
      return `the node agent found pod ${t.podIp}${o.status.hostVeth ? ` behind ${o.status.hostVeth}` : ''} and is installing its capture and delivery`;
    case 'unknown_pod':
      return `the node agent does not know pod ${t.podIp} yet (it may have just started, or the pod's Service is not in its --service list)`;
    case 'unreachable':
      return `the node agent at ${t.agent} is unreachable (${o.detail}): is the kmcast-node DaemonSet running on this node, and does a NetworkPolicy let the pod reach TCP ${new URL(t.agent).port || NODE_HTTP_PORT} on its node?`;
    case 'peers': {
      const p = o.status.peers;
      const who = p && p.waitingFor.length ? ` (${p.waitingFor.join(', ')})` : '';
      const left = p ? `; at most ${(p.leftMs / 1000).toFixed(1)} s more` : '';
      return `the node agent captures pod ${t.podIp}${o.status.hostVeth ? ` behind ${o.status.hostVeth}` : ''} and waits to hear the domain's other nodes${who}, so the app's first datagrams reach their members${left}`;
    }
    case 'bad_answer':
      return `the node agent at ${t.agent} gave an unusable answer (${o.detail}): is that port the kmcast-node agent's --http?`;
  }
}

/** Why the wait for the peer nodes ended, for the programmed line (empty for an older agent). */
function peersDone(p: PeerNodesStatus | undefined): string {
  if (!p) return '';
  if (p.degraded) {
    return `; DEGRADED: peer nodes ${p.waitingFor.join(', ')} not heard within ${(p.boundMs / 1000).toFixed(1)} s, starting without them (their members get this pod's traffic once the node agents there are heard; see kmcast status --node)`;
  }
  return p.listed === 0 ? '; no other node listed' : p.listed === 1 ? '; the other node heard' : `; all ${p.listed} other nodes heard`;
}

/** The condition a progress line is about: states that differ only in detail print once. */
const key = (o: Observation): string => o.state;

export interface WaitDeps {
  readonly poll: () => Promise<Observation>;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly say: (line: string) => void;
}

export interface WaitPolicy {
  /** 0 waits forever. */
  readonly timeoutMs: number;
  readonly intervalMs: number;
  readonly progressEveryMs?: number;
}

export type WaitResult = { readonly ok: true; readonly last: Observation } | { readonly ok: false; readonly last: Observation | undefined; readonly waitedMs: number };

/**
 * Polls until the pod is programmed (ok) or the timeout passes (not ok, with the last
 * observation). Prints a line when the state changes and every `progressEveryMs` while it stays.
 */
export async function waitUntilProgrammed(t: WaitTarget, p: WaitPolicy, d: WaitDeps): Promise<WaitResult> {
  const start = d.now();
  const every = p.progressEveryMs ?? PROGRESS_EVERY_MS;
  let last: Observation | undefined;
  let lastSaid = -Infinity;
  for (;;) {
    const o = await d.poll();
    const now = d.now();
    const waited = now - start;
    if (o.state === 'programmed') {
      d.say(`${describe(o, t)} (after ${(waited / 1000).toFixed(1)} s)`);
      return { ok: true, last: o };
    }
    if (last === undefined || key(o) !== key(last) || now - lastSaid >= every) {
      d.say(`waiting (${(waited / 1000).toFixed(0)} s): ${describe(o, t)}`);
      lastSaid = now;
    }
    last = o;
    if (p.timeoutMs > 0 && waited >= p.timeoutMs) return { ok: false, last, waitedMs: waited };
    const left = p.timeoutMs > 0 ? p.timeoutMs - waited : Infinity;
    await d.sleep(Math.max(0, Math.min(p.intervalMs, left)));
  }
}

/**
 * One `GET /v1/pods/<podIP>` with a deadline over the whole exchange (connect, headers, body) and
 * a body cap. Never throws: every failure is an Observation.
 */
export function fetchPodStatus(t: WaitTarget, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS, maxBytes = MAX_STATUS_BYTES): Promise<Observation> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: Observation): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(o);
    };
    let url: URL;
    try {
      url = new URL(podStatusPath(t.podIp), t.agent);
    } catch {
      resolve({ state: 'bad_answer', detail: `invalid agent URL ${t.agent}` });
      return;
    }
    const req = request(url, { method: 'GET', headers: { accept: 'application/json' }, agent: false }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          finish({ state: 'bad_answer', detail: `the answer is larger than ${maxBytes} bytes` });
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => finish(interpretAnswer(t.podIp, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
      res.on('error', (err: NodeJS.ErrnoException) => finish({ state: 'unreachable', detail: err.code ?? err.message }));
    });
    const timer = setTimeout(() => finish({ state: 'unreachable', detail: `no complete answer within ${timeoutMs} ms` }), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ state: 'unreachable', detail: err.code ?? err.message }));
    req.end();
  });
}

/** Parses `300s`, `5m`, `1500ms`, `1h` or a plain number of seconds; undefined when it is none. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = unit === 'ms' ? n : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n * 3_600_000;
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

export interface RawWaitFlags {
  readonly agent?: string;
  readonly nodeIp?: string;
  readonly port?: string;
  readonly podIp?: string;
  readonly timeout?: string;
  readonly interval?: string;
}

export interface WaitConfig extends WaitTarget, WaitPolicy {
  readonly requestTimeoutMs: number;
}

/** A bad flag, named: the CLI turns it into exit 2. */
export class WaitFlagError extends Error {
  override readonly name = 'WaitFlagError';
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Validates the flags (already merged with their KMCAST_* env) into a WaitConfig. */
export function waitConfig(f: RawWaitFlags): WaitConfig {
  const bad = (flag: string, why: string): never => {
    throw new WaitFlagError(`${flag}: ${why}`);
  };
  const podIp = f.podIp?.trim() ?? '';
  if (podIp === '') bad('--pod-ip', 'missing; set KMCAST_POD_IP from the downward API (fieldPath: status.podIP)');
  // An IPv6-only cluster's pod and node addresses are IPv6 (status.podIP, status.hostIP).
  if (!IPV4.test(podIp) && !isIPv6(podIp)) bad('--pod-ip', `invalid value "${podIp}" (an IPv4 or IPv6 address)`);
  let agent: string;
  if (f.agent !== undefined && f.agent.trim() !== '') {
    if (f.nodeIp !== undefined && f.nodeIp.trim() !== '') bad('--agent', 'give --agent or --node-ip, not both');
    let u: URL | undefined;
    try {
      u = new URL(f.agent.trim());
    } catch {
      u = undefined;
    }
    if (!u || u.protocol !== 'http:' || u.hostname === '') bad('--agent', `invalid URL "${f.agent}" (e.g. http://10.0.0.5:${NODE_HTTP_PORT})`);
    agent = `${u!.protocol}//${u!.host}`;
  } else {
    const ip = f.nodeIp?.trim() ?? '';
    if (ip === '') bad('--node-ip', 'missing; set KMCAST_NODE_IP from the downward API (fieldPath: status.hostIP) or give --agent URL');
    if (!IPV4.test(ip) && !isIPv6(ip)) bad('--node-ip', `invalid value "${ip}" (an IPv4 or IPv6 address)`);
    const portText = f.port?.trim() ?? String(NODE_HTTP_PORT);
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) bad('--port', `invalid value "${portText}" (an integer between 1 and 65535)`);
    agent = `http://${isIPv6(ip) ? `[${ip}]` : ip}:${port}`;
  }
  const timeoutMs = parseDuration(f.timeout ?? '300s');
  if (timeoutMs === undefined) bad('--timeout', `invalid value "${f.timeout}" (e.g. 300s, 10m; 0 waits forever)`);
  const intervalMs = parseDuration(f.interval ?? '1s');
  if (intervalMs === undefined || intervalMs < 100 || intervalMs > 60_000) bad('--interval', `invalid value "${f.interval}" (between 100ms and 60s)`);
  // One answer may take at most the poll interval plus a second, never more than the default.
  const requestTimeoutMs = Math.min(DEFAULT_REQUEST_TIMEOUT_MS, intervalMs! + 1000);
  return { agent, podIp, timeoutMs: timeoutMs!, intervalMs: intervalMs!, requestTimeoutMs };
}
