/**
 * The agent's typed configuration: flags, then env vars KMCAST_<FLAG>, then defaults; validated
 * with messages that name the flag and the allowed range (exit 2 through ConfigError).
 */
import { LOG_LEVELS } from '../log.js';
import type { LogLevel } from '../log.js';
import { broadcastOf, isIpv4, parseCidr, peerAddressError } from '../net/ipv4.js';
import { canonicalIpv6, isIpv6, isIpv6Unicast } from '../net/ipv6.js';
import { formatHostPort, parseServerAddress } from '../node/config.js';
import { listedPeerExpiry } from '../membership/expiry.js';
import { DNS_NAME, FlagTable, IF_NAME, parseHostPort } from '../runtime/flags.js';
export { parseHostPort } from '../runtime/flags.js';

export type Addressing = { readonly kind: 'auto' } | { readonly kind: 'pod-ip' } | { readonly kind: 'subnet'; readonly cidr: string };

export interface AgentConfig {
  readonly service: string | undefined;
  readonly peers: readonly string[];
  readonly dnsServer: string | undefined;
  readonly interface: string | undefined;
  readonly device: string;
  readonly vni: number;
  readonly vxlanPort: number;
  readonly controlPort: number;
  readonly http: { readonly host: string; readonly port: number } | undefined;
  readonly keyFile: string | undefined;
  readonly addressing: Addressing;
  readonly broadcast: { readonly cidr: string; readonly address: string } | undefined;
  readonly unregistered: 'drop' | 'flood';
  readonly replication: 'selective' | 'flood';
  readonly heartbeatMs: number;
  readonly peerExpiry: number;
  /** Heartbeats a peer still listed by DNS or --peers may miss before removal (suspect from peerExpiry on). */
  readonly listedPeerExpiry: number;
  readonly resolveMs: number;
  readonly resyncMs: number;
  readonly insecureNoAllowlist: boolean;
  readonly setupOnly: boolean;
  readonly logLevel: LogLevel;
  readonly podIp: string | undefined;
  /** on: apps' eth0 sends are moved into the overlay and their eth0 joins count (capture.ts). */
  readonly capture: 'on' | 'off';
}

export { envName } from '../runtime/flags.js';

/** The raw options, as strings/booleans, before validation (commander output or env). */
export type RawOptions = Record<string, string | boolean | undefined>;

/** Option keys (commander's camelCase) and their flags, for env lookup and messages. */
export const AGENT_FLAGS: Record<string, string> = {
  service: '--service',
  peers: '--peers',
  dnsServer: '--dns-server',
  interface: '--interface',
  device: '--device',
  vni: '--vni',
  vxlanPort: '--vxlan-port',
  controlPort: '--control-port',
  http: '--http',
  keyFile: '--key-file',
  addressing: '--addressing',
  broadcast: '--broadcast',
  unregistered: '--unregistered',
  replication: '--replication',
  heartbeatInterval: '--heartbeat-interval',
  peerExpiry: '--peer-expiry',
  listedPeerExpiry: '--listed-peer-expiry',
  resolveInterval: '--resolve-interval',
  resyncInterval: '--resync-interval',
  insecureNoAllowlist: '--insecure-no-allowlist',
  setupOnly: '--setup-only',
  logLevel: '--log-level',
  podIp: '--pod-ip',
  capture: '--capture',
};

const DEFAULTS: RawOptions = {
  device: 'vx0',
  vni: '4242',
  vxlanPort: '7471',
  controlPort: '7470',
  http: ':9470',
  addressing: 'auto',
  unregistered: 'drop',
  replication: 'selective',
  heartbeatInterval: '1000',
  peerExpiry: '5',
  resolveInterval: '5000',
  resyncInterval: '10000',
  logLevel: 'info',
  capture: 'on',
};

const TABLE = new FlagTable(AGENT_FLAGS, DEFAULTS);

/** Merge: explicit flags win over env vars, env vars over defaults. */
export function mergeOptions(flags: RawOptions, env: NodeJS.ProcessEnv): RawOptions {
  return TABLE.merge(flags, env) as RawOptions;
}

function fail(key: string, message: string): never {
  return TABLE.fail(key, message);
}
function int(raw: RawOptions, key: string, min: number, max: number): number {
  return TABLE.int(raw, key, min, max);
}
function bool(raw: RawOptions, key: string): boolean {
  return TABLE.bool(raw, key);
}

/**
 * Why `p`, given in --peers, is no pod address: an IPv4 peer follows the agents' one rule
 * (peerAddressError); an IPv6 one (a pod of an IPv6-only cluster) must be unicast. Pure.
 */
export function podPeerAddressError(p: string): string | undefined {
  if (isIpv6(p)) return isIpv6Unicast(p) ? undefined : `${JSON.stringify(p)} is not a unicast IPv6 address (not ::, loopback, link-local, multicast or IPv4-mapped): give the peer pods' IPs`;
  return peerAddressError(p, "peer pods'");
}

export function validateConfig(raw: RawOptions): AgentConfig {
  const str = (k: string): string | undefined => {
    const v = raw[k];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const service = str('service');
  if (service !== undefined && !DNS_NAME.test(service)) fail('service', `${JSON.stringify(service)} is not a DNS name`);
  const peers = (str('peers') ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const [i, p] of peers.entries()) {
    const why = podPeerAddressError(p);
    if (why) fail('peers', why);
    peers[i] = canonicalIpv6(p) ?? p;
  }
  let dnsServer = str('dnsServer');
  if (dnsServer !== undefined) {
    const hp = parseServerAddress(dnsServer, 53);
    if (!hp) fail('dnsServer', `${JSON.stringify(dnsServer)} is not IP[:PORT] or [IPv6]:PORT`);
    dnsServer = formatHostPort(hp.host, hp.port);
  }
  const iface = str('interface');
  if (iface !== undefined && !IF_NAME.test(iface)) fail('interface', `${JSON.stringify(iface)} is not an interface name`);
  const device = str('device') ?? 'vx0';
  if (!IF_NAME.test(device)) fail('device', `${JSON.stringify(device)} is not an interface name (1-15 characters)`);
  // VNI 0 is reserved by some implementations; 24 bits on the wire.
  const vni = int(raw, 'vni', 1, 16_777_215);
  const vxlanPort = int(raw, 'vxlanPort', 1, 65535);
  const controlPort = int(raw, 'controlPort', 1, 65535);
  if (vxlanPort === controlPort) fail('controlPort', `must differ from --vxlan-port (${vxlanPort})`);
  let http: AgentConfig['http'];
  const httpRaw = str('http');
  if (httpRaw !== undefined && httpRaw !== 'off') {
    const hp = parseHostPort(httpRaw, 9470);
    if (!hp || (hp.host !== '' && !isIpv4(hp.host) && hp.host !== 'localhost')) {
      fail('http', `${JSON.stringify(httpRaw)} is not [IP]:PORT or "off"`);
    }
    http = hp;
  }
  const keyFile = str('keyFile');
  const addrRaw = str('addressing') ?? 'auto';
  let addressing: Addressing;
  if (addrRaw === 'auto' || addrRaw === 'pod-ip') addressing = { kind: addrRaw };
  else if (addrRaw.startsWith('subnet=')) {
    const c = parseCidr(addrRaw.slice(7));
    if (!c || c.prefix > 30) fail('addressing', `${JSON.stringify(addrRaw)}: subnet=CIDR needs an IPv4 CIDR of /30 or larger`);
    // Refused here, where every flag is checked, so doctor's and the docs' advice can be tested
    // against the parser: subnet addressing is not implemented (docs/architecture.md).
    fail('addressing', `${JSON.stringify(addrRaw)}: subnet addressing is not implemented in this version; use auto or pod-ip (and set net.ipv4.conf.all.rp_filter=2 on strict nodes)`);
  } else fail('addressing', `invalid value ${JSON.stringify(addrRaw)} (must be auto or pod-ip)`);
  let broadcast: AgentConfig['broadcast'];
  const bRaw = str('broadcast');
  if (bRaw !== undefined) {
    const c = parseCidr(bRaw);
    if (!c || c.prefix > 30) fail('broadcast', `${JSON.stringify(bRaw)} is not an IPv4 CIDR of /30 or larger`);
    broadcast = { cidr: bRaw, address: broadcastOf(c) };
  }
  const unregistered = str('unregistered') ?? 'drop';
  if (unregistered !== 'drop' && unregistered !== 'flood') fail('unregistered', `invalid value ${JSON.stringify(unregistered)} (must be drop or flood)`);
  const replication = str('replication') ?? 'selective';
  if (replication !== 'selective' && replication !== 'flood') fail('replication', `invalid value ${JSON.stringify(replication)} (must be selective or flood)`);
  const logLevel = str('logLevel') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) fail('logLevel', `invalid value ${JSON.stringify(logLevel)} (must be one of ${LOG_LEVELS.join(', ')})`);
  const podIpText = str('podIp');
  if (podIpText !== undefined && !isIpv4(podIpText) && !isIpv6Unicast(podIpText)) fail('podIp', `${JSON.stringify(podIpText)} is not an IPv4 or a unicast IPv6 address`);
  // An IPv6 pod IP (an IPv6-only pod) makes the underlay IPv6: VXLAN over IPv6, udp6, AAAA peers.
  const podIp = podIpText === undefined ? undefined : (canonicalIpv6(podIpText) ?? podIpText);
  if (podIp !== undefined && broadcast && podIp.includes(':')) fail('broadcast', `directed broadcast is IPv4: this pod's IP ${podIp} is IPv6`);
  const capture = str('capture') ?? 'on';
  if (capture !== 'on' && capture !== 'off') fail('capture', `invalid value ${JSON.stringify(capture)} (must be on or off)`);
  const setupOnly = bool(raw, 'setupOnly');
  if (!setupOnly && service === undefined && peers.length === 0) {
    fail('service', 'no peers to find: give --service NAME (a headless Service) and/or --peers IP,IP');
  }
  const peerExpiry = int(raw, 'peerExpiry', 2, 100);
  const listed = listedPeerExpiry(peerExpiry, raw.listedPeerExpiry === undefined ? undefined : int(raw, 'listedPeerExpiry', 2, 300));
  if ('error' in listed) fail('listedPeerExpiry', listed.error);
  return {
    service,
    peers,
    dnsServer,
    interface: iface,
    device,
    vni,
    vxlanPort,
    controlPort,
    http,
    keyFile,
    addressing,
    broadcast,
    unregistered,
    replication,
    heartbeatMs: int(raw, 'heartbeatInterval', 50, 60_000),
    peerExpiry,
    listedPeerExpiry: listed.value,
    resolveMs: int(raw, 'resolveInterval', 200, 600_000),
    resyncMs: int(raw, 'resyncInterval', 200, 3_600_000),
    insecureNoAllowlist: bool(raw, 'insecureNoAllowlist'),
    setupOnly,
    logLevel: logLevel as LogLevel,
    podIp,
    capture,
  };
}
