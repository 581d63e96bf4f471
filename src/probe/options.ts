/**
 * `kmcast probe` configuration: defaults, then validation with messages that name the flag
 * (pure; the interface table is passed in so tests need no real interfaces).
 */
import { isMulticast } from '../net/ipv4.js';
import { canonicalIpv6, isIpv6Multicast, isIpv6Unicast } from '../net/ipv6.js';
import { isIPv4 } from 'node:net';
import type { NetworkInterfaceInfo } from 'node:os';
import { ConfigError } from '../errors.js';
import { headerBytes, MAX_DATAGRAM_BYTES, MAX_ID_BYTES } from './codec.js';

/** RFC 2365 IPv4 Local Scope (239.255.0.0/16): never routed off the site by design. */
export const DEFAULT_GROUP = '239.255.71.1';
export const DEFAULT_PORT = 4321;
export const DEFAULT_RATE = 10;
export const DEFAULT_SIZE = 64;
export const DEFAULT_DURATION_S = 10;
export const DEFAULT_WAIT_S = 2;
/** TTL 1: the overlay is one L2 segment, so nothing needs more, and nothing leaks beyond it. */
export const DEFAULT_TTL = 1;

export type ProbeMode = 'both' | 'send' | 'receive';

export interface ProbeConfig {
  /** The group (canonical text) and its family: an IPv6 group makes an IPv6 probe. */
  readonly group: string;
  readonly family: 4 | 6;
  readonly port: number;
  /** True when the destination is not a multicast group: send with SO_BROADCAST, join nothing. */
  readonly broadcast: boolean;
  readonly rate: number;
  readonly size: number;
  readonly count: number;
  readonly waitMs: number;
  readonly ttl: number;
  /**
   * IPv4: the local address used for the join and for sending. IPv6: `::%<name>`, the interface
   * by name (how Node takes an IPv6 multicast interface). Undefined = the route decides.
   */
  readonly interfaceAddress: string | undefined;
  /** IPv6: the interface name of --interface (a link-local group is bound with it). */
  readonly interfaceName?: string;
  readonly id: string;
  readonly mode: ProbeMode;
  readonly json: boolean;
  readonly maxLossPercent: number | undefined;
  readonly peers: readonly string[];
  readonly service: string | undefined;
}

/** Flags as commander hands them over (strings, booleans, undefined). */
export interface RawProbeOptions {
  readonly group?: string;
  readonly rate?: string;
  readonly size?: string;
  readonly count?: string;
  readonly duration?: string;
  readonly wait?: string;
  readonly ttl?: string;
  readonly interface?: string;
  readonly id?: string;
  readonly json?: boolean;
  readonly maxLoss?: string;
  readonly receiveOnly?: boolean;
  readonly sendOnly?: boolean;
  readonly peers?: string;
  readonly service?: string;
}

export interface ParseContext {
  readonly hostname: string;
  readonly interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>;
}

function number(flag: string, raw: string, opts: { min: number; max: number; integer?: boolean }): number {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v)) || v < opts.min || v > opts.max) {
    const kind = opts.integer ? 'an integer' : 'a number';
    throw new ConfigError(`invalid ${flag} ${JSON.stringify(raw)}: must be ${kind} between ${opts.min} and ${opts.max}`);
  }
  return v;
}

/** `IPV4[:PORT]`, `[IPV6]:PORT` or a bare IPv6 group; an IPv6 address must be multicast (IPv6 has no broadcast). */
export function parseGroup(raw: string): { group: string; port: number; family: 4 | 6 } {
  const text = raw.trim();
  const v6 = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(text) ?? (text.includes(':') && !text.includes('[') && text.split(':').length > 2 ? [text, text, undefined] : null);
  const m = v6 ?? /^([0-9.]+)(?::([0-9]+))?$/.exec(text);
  const expected = `expected IPV4[:PORT] or [IPV6]:PORT, e.g. ${DEFAULT_GROUP}:${DEFAULT_PORT} or [ff05::1:3]:${DEFAULT_PORT}`;
  const port = (p: string | undefined): number => (p === undefined ? DEFAULT_PORT : number('--group port', p, { min: 1, max: 65535, integer: true }));
  if (v6) {
    const group = canonicalIpv6(v6[1]!);
    if (group === undefined) throw new ConfigError(`invalid --group ${JSON.stringify(raw)}: ${JSON.stringify(v6[1])} is not an IPv6 address; ${expected}`);
    if (!isIpv6Multicast(group)) throw new ConfigError(`invalid --group ${JSON.stringify(raw)}: ${group} is not an IPv6 multicast group (ff00::/8); IPv6 has no broadcast`);
    return { group, port: port(v6[2]), family: 6 };
  }
  const group = m?.[1];
  if (!m || group === undefined || !isIPv4(group)) throw new ConfigError(`invalid --group ${JSON.stringify(raw)}: ${expected}`);
  return { group, port: port(m[2]), family: 4 };
}

/** IPv6: --interface names an interface, or one of its IPv6 addresses; `::%name` is how Node takes it. */
export function resolveInterface6(raw: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): { address: string; name: string } {
  const byAddress = Object.entries(interfaces).find(([, list]) => (list ?? []).some((a) => a.family === 'IPv6' && canonicalIpv6(a.address.split('%')[0]!) === canonicalIpv6(raw)));
  const name = interfaces[raw] ? raw : byAddress?.[0];
  if (name === undefined) {
    const names = Object.keys(interfaces).join(', ') || 'none';
    throw new ConfigError(`invalid --interface ${JSON.stringify(raw)}: no such interface (have: ${names}); give an interface name or one of its IPv6 addresses`);
  }
  return { address: `::%${name}`, name };
}

/** --interface takes an IPv4 address or an interface name (its first IPv4 address is used). */
export function resolveInterface(raw: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string {
  if (isIPv4(raw)) return raw;
  const addrs = interfaces[raw];
  if (!addrs) {
    const names = Object.keys(interfaces).join(', ') || 'none';
    throw new ConfigError(`invalid --interface ${JSON.stringify(raw)}: no such interface (have: ${names}); give an interface name or one of its IPv4 addresses`);
  }
  const v4 = addrs.find((a) => a.family === 'IPv4');
  if (!v4) throw new ConfigError(`invalid --interface ${JSON.stringify(raw)}: it has no IPv4 address`);
  return v4.address;
}

/** --peers: addresses of the group's family (IPv6 in canonical text). */
export function parsePeers(raw: string | undefined, family: 4 | 6 = 4): string[] {
  if (raw === undefined || raw.trim() === '') return [];
  const peers = raw
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const out: string[] = [];
  for (const p of peers) {
    const v6 = family === 6 ? canonicalIpv6(p) : undefined;
    if (family === 6 ? v6 === undefined || !isIpv6Unicast(v6) : !isIPv4(p)) {
      throw new ConfigError(`invalid --peers entry ${JSON.stringify(p)}: expected a comma-separated list of IPv${family} addresses (the --group is IPv${family})`);
    }
    out.push(v6 ?? p);
  }
  return [...new Set(out)];
}

export function parseProbeOptions(raw: RawProbeOptions, ctx: ParseContext): ProbeConfig {
  const { group, port, family } = parseGroup(raw.group ?? `${DEFAULT_GROUP}:${DEFAULT_PORT}`);
  if (raw.sendOnly && raw.receiveOnly) {
    throw new ConfigError('conflicting --send-only and --receive-only: give at most one of them');
  }
  const mode: ProbeMode = raw.sendOnly ? 'send' : raw.receiveOnly ? 'receive' : 'both';
  const rate = raw.rate === undefined ? DEFAULT_RATE : number('--rate', raw.rate, { min: 0, max: 10_000_000 });
  if (raw.count !== undefined && raw.duration !== undefined) {
    throw new ConfigError('conflicting --count and --duration: give one of them (the count is rate x duration)');
  }
  let count: number;
  if (raw.count !== undefined) {
    count = number('--count', raw.count, { min: 1, max: 0xffff_ffff, integer: true });
  } else {
    if (rate === 0) throw new ConfigError('--rate 0 (unlimited) needs --count: a duration cannot be turned into a count without a rate');
    const duration = raw.duration === undefined ? DEFAULT_DURATION_S : number('--duration', raw.duration, { min: 0.001, max: 86_400 });
    count = Math.max(1, Math.round(rate * duration));
  }
  const id = (raw.id ?? ctx.hostname).trim();
  const idBytes = Buffer.byteLength(id, 'utf8');
  if (idBytes < 1 || idBytes > MAX_ID_BYTES) {
    throw new ConfigError(`invalid --id ${JSON.stringify(id)}: must be 1..${MAX_ID_BYTES} bytes (the default is the host name)`);
  }
  const min = headerBytes(id);
  // IPv6's header is 20 bytes longer than IPv4's: its largest UDP payload is that much smaller.
  const maxSize = family === 6 ? MAX_DATAGRAM_BYTES - 20 : MAX_DATAGRAM_BYTES;
  const size = raw.size === undefined ? Math.max(DEFAULT_SIZE, min) : number('--size', raw.size, { min, max: maxSize, integer: true });
  const waitS = raw.wait === undefined ? DEFAULT_WAIT_S : number('--wait', raw.wait, { min: 0, max: 3600 });
  const ttl = raw.ttl === undefined ? DEFAULT_TTL : number('--ttl', raw.ttl, { min: 1, max: 255, integer: true });
  const maxLossPercent = raw.maxLoss === undefined ? undefined : number('--max-loss', raw.maxLoss, { min: 0, max: 100 });
  const service = raw.service?.trim() || undefined;
  const iface6 = family === 6 && raw.interface !== undefined ? resolveInterface6(raw.interface, ctx.interfaces) : undefined;
  return {
    group,
    family,
    port,
    broadcast: family === 4 && !isMulticast(group),
    rate,
    size,
    count,
    waitMs: waitS * 1000,
    ttl,
    interfaceAddress: iface6 ? iface6.address : raw.interface === undefined ? undefined : resolveInterface(raw.interface, ctx.interfaces),
    ...(iface6 ? { interfaceName: iface6.name } : {}),
    id,
    mode,
    json: raw.json === true,
    maxLossPercent,
    peers: parsePeers(raw.peers, family),
    service,
  };
}
