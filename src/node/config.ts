/**
 * `kmcast node` configuration: flags, then env vars KMCAST_<FLAG>, then defaults; validated with
 * messages that name the flag (exit 2 through ConfigError). Pure.
 *
 * A domain is one multicast app: `--service NAME[=VNI]` (repeatable, or KMCAST_SERVICE comma
 * separated). Its DNS A records are its member pods; it gets its own VNI and its own VXLAN device
 * `kmcvx<vni>` on every node, so two domains never share a device, an MDB or a flood list.
 */
import { createHash } from 'node:crypto';
import { LOG_LEVELS } from '../log.js';
import type { LogLevel } from '../log.js';
import { isIpv4, peerAddressError } from '../net/ipv4.js';
import { canonicalIpv6, isIpv6, isIpv6Unicast } from '../net/ipv6.js';
import { listedPeerExpiry } from '../membership/expiry.js';
import { DNS_NAME, envName, FlagTable, IF_NAME, parseHostPort } from '../runtime/flags.js';
import { NODE_CONTROL_PORT, NODE_HTTP_PORT, NODE_VXLAN_PORT } from './api.js';
import type { GatewayConfig } from '../gateway/config.js';
import { GATEWAY_FLAGS, parseGatewayConfig } from '../gateway/config.js';

export interface NodeDomain {
  /** The headless Service name, as given (the control label and status key). */
  readonly service: string;
  readonly vni: number;
  /** `kmcvx<vni>`: at most 13 characters, within IFNAMSIZ. */
  readonly device: string;
}

export interface NodeConfig {
  readonly domains: readonly NodeDomain[];
  readonly peers: readonly string[];
  readonly peersService: string | undefined;
  readonly dnsServer: string | undefined;
  readonly interface: string | undefined;
  readonly nodeIp: string | undefined;
  readonly keyFile: string | undefined;
  /** Run without --key-file (control messages unauthenticated): only when explicitly asked. */
  readonly insecureNoKey: boolean;
  /**
   * The pod API (/v1/pods/<ip> for `kmcast wait`, /healthz, /readyz). /status and /metrics are
   * answered here only to clients on the node's loopback, and not at all when `statusHttp` is set.
   */
  readonly http: { readonly host: string; readonly port: number } | undefined;
  /** The operator's listener: /status, /metrics and the rest, to anyone who reaches it. */
  readonly statusHttp: { readonly host: string; readonly port: number } | undefined;
  readonly vxlanPort: number;
  readonly controlPort: number;
  readonly unregistered: 'drop' | 'flood';
  readonly heartbeatMs: number;
  readonly peerExpiry: number;
  /** Heartbeats a peer node still listed by --peers-service or --peers may miss (suspect from peerExpiry on). */
  readonly listedPeerExpiry: number;
  readonly resolveMs: number;
  readonly resyncMs: number;
  /** How often every member's joins are re-read besides the maddress monitor (ms). */
  readonly joinsMs: number;
  readonly logLevel: LogLevel;
  /** The gateway to the outside network (--gateway-*), or undefined. */
  readonly gateway: GatewayConfig | undefined;
}

export type RawNodeOptions = Record<string, string | boolean | readonly string[] | undefined>;

export const NODE_FLAGS: Record<string, string> = {
  service: '--service',
  peers: '--peers',
  peersService: '--peers-service',
  dnsServer: '--dns-server',
  interface: '--interface',
  nodeIp: '--node-ip',
  keyFile: '--key-file',
  insecureNoKey: '--insecure-no-key',
  http: '--http',
  statusHttp: '--status-http',
  vxlanPort: '--vxlan-port',
  controlPort: '--control-port',
  unregistered: '--unregistered',
  heartbeatInterval: '--heartbeat-interval',
  peerExpiry: '--peer-expiry',
  listedPeerExpiry: '--listed-peer-expiry',
  resolveInterval: '--resolve-interval',
  resyncInterval: '--resync-interval',
  joinsInterval: '--joins-interval',
  logLevel: '--log-level',
  ...GATEWAY_FLAGS,
};

/** Flags that may be given more than once (their env var is a comma list). */
const REPEATABLE = new Set(['service', 'gatewayGroup']);

const DEFAULTS: RawNodeOptions = {
  http: `0.0.0.0:${NODE_HTTP_PORT}`,
  vxlanPort: String(NODE_VXLAN_PORT),
  controlPort: String(NODE_CONTROL_PORT),
  unregistered: 'drop',
  heartbeatInterval: '1000',
  peerExpiry: '5',
  resolveInterval: '2000',
  resyncInterval: '10000',
  joinsInterval: '30000',
  logLevel: 'info',
};

const TABLE = new FlagTable(NODE_FLAGS, DEFAULTS, REPEATABLE);

export function nodeEnvName(flag: string): string {
  return envName(flag);
}

/** Explicit flags win over env vars, env vars over defaults. A repeatable flag stays an array. */
export function mergeNodeOptions(flags: RawNodeOptions, env: NodeJS.ProcessEnv): RawNodeOptions {
  return TABLE.merge(flags, env) as RawNodeOptions;
}

function fail(key: string, message: string): never {
  return TABLE.fail(key, message);
}

function int(raw: RawNodeOptions, key: string, min: number, max: number): number {
  return TABLE.int(raw, key, min, max);
}

function bool(raw: RawNodeOptions, key: string): boolean {
  return TABLE.bool(raw, key);
}

function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0';
}

/** `[IP]:PORT`, `PORT`-less `IP`, or "off" (undefined). */
function listenAddress(text: string | undefined, key: 'http' | 'statusHttp'): { host: string; port: number } | undefined {
  if (text === undefined || text === 'off') return undefined;
  const hp = parseHostPort(text, NODE_HTTP_PORT);
  if (!hp || (hp.host !== '' && !isIpv4(hp.host) && hp.host !== 'localhost')) fail(key, `${JSON.stringify(text)} is not [IP]:PORT or "off"`);
  return hp;
}

/**
 * Why `p`, given in --peers, is no node address: an IPv4 peer follows the agents' one rule
 * (peerAddressError); an IPv6 one (a node on an IPv6 underlay) must be unicast. Pure.
 */
export function nodePeerAddressError(p: string): string | undefined {
  if (isIpv6(p)) return isIpv6Unicast(p) ? undefined : `${JSON.stringify(p)} is not a unicast IPv6 address (not ::, loopback, link-local, multicast or IPv4-mapped): give the other nodes' IPs`;
  return peerAddressError(p, "other nodes'");
}

/** `IP`, `IP:PORT`, `IPv6` or `[IPv6]:PORT` (a DNS server); undefined when it is none of them. Pure. */
export function parseServerAddress(text: string, defaultPort: number): { host: string; port: number } | undefined {
  const t = text.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(t);
  if (bracketed || isIpv6(t)) {
    const host = canonicalIpv6(bracketed ? bracketed[1]! : t);
    const port = bracketed?.[2] === undefined ? defaultPort : Number(bracketed[2]);
    return host !== undefined && port >= 1 && port <= 65535 ? { host, port } : undefined;
  }
  const hp = parseHostPort(t, defaultPort);
  return hp && isIpv4(hp.host) ? hp : undefined;
}

/** `host:port`, an IPv6 host in brackets (`[fd00::1]:53`). Pure. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Without --key-file any sender whose source address is a listed node IP is believed, and a pod
 * behind masquerade has its node's address: it could replace the node's groups. Refused unless
 * --insecure-no-key says so. Pure.
 */
export function keyPolicyError(c: Pick<NodeConfig, 'keyFile' | 'insecureNoKey'>): string | undefined {
  if (c.keyFile !== undefined || c.insecureNoKey) return undefined;
  return "no key: control messages between node agents would be unauthenticated, and a pod whose traffic is masqueraded to its node's IP could forge them; give --key-file PATH (deploy/node mounts the kmcast-node-key Secret), or --insecure-no-key to run without one (tests, trusted networks)";
}

/** The keyless refusal as a ConfigError naming --key-file (exit 2). */
export function checkKeyPolicy(c: Pick<NodeConfig, 'keyFile' | 'insecureNoKey'>): void {
  const e = keyPolicyError(c);
  if (e) fail('keyFile', e);
}

export const MAX_VNI = 16_777_215;

/**
 * The VNI a domain gets when none is given: the first 24 bits of SHA-256 of the name, kept out of
 * 0 and of 1-4095 (small VNIs are what people pick by hand). The same on every node.
 */
export function defaultVni(service: string): number {
  const h = createHash('sha256').update(service.toLowerCase().replace(/\.$/, '')).digest().readUIntBE(0, 3);
  return 4096 + (h % (MAX_VNI - 4096));
}

export function deviceFor(vni: number): string {
  return `kmcvx${vni}`;
}

/** `NAME` or `NAME=VNI` values (each may itself be a comma list) -> domains. */
export function parseDomains(values: readonly string[]): NodeDomain[] {
  const out: NodeDomain[] = [];
  const items = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  for (const item of items) {
    const eq = item.indexOf('=');
    const service = (eq < 0 ? item : item.slice(0, eq)).trim();
    if (!DNS_NAME.test(service)) fail('service', `${JSON.stringify(service)} is not a DNS name (give NAME or NAME=VNI)`);
    let vni: number;
    if (eq < 0) vni = defaultVni(service);
    else {
      const text = item.slice(eq + 1).trim();
      vni = /^\d+$/.test(text) ? Number(text) : NaN;
      if (!Number.isInteger(vni) || vni < 1 || vni > MAX_VNI) fail('service', `${JSON.stringify(item)}: the VNI must be an integer from 1 to ${MAX_VNI}`);
    }
    const same = out.find((d) => d.service.toLowerCase() === service.toLowerCase());
    if (same) fail('service', `${JSON.stringify(service)} is given twice`);
    const clash = out.find((d) => d.vni === vni);
    if (clash) fail('service', `${JSON.stringify(service)} and ${JSON.stringify(clash.service)} both use VNI ${vni}; give one of them another (NAME=VNI)`);
    out.push({ service, vni, device: deviceFor(vni) });
  }
  return out;
}

export function validateNodeConfig(raw: RawNodeOptions, opts: { gatewayRequired?: boolean } = {}): NodeConfig {
  const str = (k: string): string | undefined => {
    const v = raw[k];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const svc = raw.service;
  const domains = parseDomains(svc === undefined ? [] : typeof svc === 'string' ? [svc] : Array.isArray(svc) ? (svc as string[]) : []);
  // No domain yet is a state, not a mistake: deploy/node runs before the first app is added to
  // its ConfigMap, and an agent that exited would crash-loop until then. It runs idle and ready
  // (and says so); a gateway needs its domain, so that still refuses.
  if (domains.length === 0 && str('gatewayInterface') !== undefined) fail('service', 'the gateway serves a domain: give --service NAME (a headless Service whose A records are the member pods)');
  const peers = (str('peers') ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of peers) {
    const why = nodePeerAddressError(p);
    if (why) fail('peers', why);
  }
  for (const [i, p] of peers.entries()) peers[i] = canonicalIpv6(p) ?? p;
  const peersService = str('peersService');
  if (peersService !== undefined && !DNS_NAME.test(peersService)) fail('peersService', `${JSON.stringify(peersService)} is not a DNS name`);
  if (peersService === undefined && peers.length === 0) {
    fail('peersService', 'no way to find the other node agents: give --peers-service NAME (their headless Service) and/or --peers IP,IP');
  }
  let dnsServer = str('dnsServer');
  if (dnsServer !== undefined) {
    const hp = parseServerAddress(dnsServer, 53);
    if (!hp) fail('dnsServer', `${JSON.stringify(dnsServer)} is not IP[:PORT] or [IPv6]:PORT`);
    dnsServer = formatHostPort(hp.host, hp.port);
  }
  const iface = str('interface');
  if (iface !== undefined && !IF_NAME.test(iface)) fail('interface', `${JSON.stringify(iface)} is not an interface name`);
  const nodeIpText = str('nodeIp');
  if (nodeIpText !== undefined && !isIpv4(nodeIpText) && !isIpv6Unicast(nodeIpText)) fail('nodeIp', `${JSON.stringify(nodeIpText)} is not an IPv4 or a unicast IPv6 address`);
  // An IPv6 node address makes the underlay IPv6 (VXLAN over IPv6, udp6 control socket, AAAA peers).
  const nodeIp = nodeIpText === undefined ? undefined : (canonicalIpv6(nodeIpText) ?? nodeIpText);
  const vxlanPort = int(raw, 'vxlanPort', 1, 65535);
  const controlPort = int(raw, 'controlPort', 1, 65535);
  if (vxlanPort === controlPort) fail('controlPort', `must differ from --vxlan-port (${vxlanPort})`);
  const http = listenAddress(str('http'), 'http');
  const statusHttp = listenAddress(str('statusHttp'), 'statusHttp');
  if (http && statusHttp && http.port === statusHttp.port && (http.host === statusHttp.host || isWildcard(http.host) || isWildcard(statusHttp.host))) {
    fail('statusHttp', `${statusHttp.host}:${statusHttp.port} overlaps --http ${http.host}:${http.port}; give it another port (or another address than a wildcard one)`);
  }
  const unregistered = str('unregistered') ?? 'drop';
  if (unregistered !== 'drop' && unregistered !== 'flood') fail('unregistered', `invalid value ${JSON.stringify(unregistered)} (must be drop or flood)`);
  const logLevel = str('logLevel') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) fail('logLevel', `invalid value ${JSON.stringify(logLevel)} (must be one of ${LOG_LEVELS.join(', ')})`);
  const peerExpiry = int(raw, 'peerExpiry', 2, 100);
  const listed = listedPeerExpiry(peerExpiry, raw.listedPeerExpiry === undefined ? undefined : int(raw, 'listedPeerExpiry', 2, 300));
  if ('error' in listed) fail('listedPeerExpiry', listed.error);
  return {
    domains,
    peers,
    peersService,
    dnsServer,
    interface: iface,
    nodeIp,
    keyFile: str('keyFile'),
    insecureNoKey: bool(raw, 'insecureNoKey'),
    http,
    statusHttp,
    vxlanPort,
    controlPort,
    unregistered,
    heartbeatMs: int(raw, 'heartbeatInterval', 50, 60_000),
    peerExpiry,
    listedPeerExpiry: listed.value,
    resolveMs: int(raw, 'resolveInterval', 200, 600_000),
    resyncMs: int(raw, 'resyncInterval', 200, 3_600_000),
    joinsMs: int(raw, 'joinsInterval', 200, 600_000),
    logLevel: logLevel as LogLevel,
    gateway: parseGatewayConfig(
      raw,
      domains.map((d) => d.service),
      { required: opts.gatewayRequired },
    ),
  };
}

/** The control protocol's cluster label of a domain (docs/protocol.md, node mode). */
export function nodeClusterLabel(domain: NodeDomain): string {
  const label = `node:${domain.vni}/${domain.service}`;
  if (Buffer.byteLength(label) <= 255) return label;
  return `node:${domain.vni}/sha256:${createHash('sha256').update(domain.service).digest('hex')}`;
}
