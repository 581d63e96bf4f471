/**
 * `kmcast probe` configuration: defaults, then validation with messages that name the flag
 * (pure; the interface table is passed in so tests need no real interfaces).
 */
import { isMulticast } from '../net/ipv4.js';
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
  readonly group: string;
  readonly port: number;
  /** True when the destination is not a multicast group: send with SO_BROADCAST, join nothing. */
  readonly broadcast: boolean;
  readonly rate: number;
  readonly size: number;
  readonly count: number;
  readonly waitMs: number;
  readonly ttl: number;
  /** Local IPv4 address used for the join and for sending; undefined = the route decides. */
  readonly interfaceAddress: string | undefined;
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

export function parseGroup(raw: string): { group: string; port: number } {
  const m = /^([0-9.]+)(?::([0-9]+))?$/.exec(raw.trim());
  const group = m?.[1];
  if (!m || group === undefined || !isIPv4(group)) {
    throw new ConfigError(`invalid --group ${JSON.stringify(raw)}: expected IPV4[:PORT], e.g. ${DEFAULT_GROUP}:${DEFAULT_PORT}`);
  }
  const port = m[2] === undefined ? DEFAULT_PORT : number('--group port', m[2], { min: 1, max: 65535, integer: true });
  return { group, port };
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

export function parsePeers(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return [];
  const peers = raw
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  for (const p of peers) {
    if (!isIPv4(p)) throw new ConfigError(`invalid --peers entry ${JSON.stringify(p)}: expected a comma-separated list of IPv4 addresses`);
  }
  return [...new Set(peers)];
}

export function parseProbeOptions(raw: RawProbeOptions, ctx: ParseContext): ProbeConfig {
  const { group, port } = parseGroup(raw.group ?? `${DEFAULT_GROUP}:${DEFAULT_PORT}`);
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
  const size = raw.size === undefined ? Math.max(DEFAULT_SIZE, min) : number('--size', raw.size, { min, max: MAX_DATAGRAM_BYTES, integer: true });
  const waitS = raw.wait === undefined ? DEFAULT_WAIT_S : number('--wait', raw.wait, { min: 0, max: 3600 });
  const ttl = raw.ttl === undefined ? DEFAULT_TTL : number('--ttl', raw.ttl, { min: 1, max: 255, integer: true });
  const maxLossPercent = raw.maxLoss === undefined ? undefined : number('--max-loss', raw.maxLoss, { min: 0, max: 100 });
  const service = raw.service?.trim() || undefined;
  return {
    group,
    port,
    broadcast: !isMulticast(group),
    rate,
    size,
    count,
    waitMs: waitS * 1000,
    ttl,
    interfaceAddress: raw.interface === undefined ? undefined : resolveInterface(raw.interface, ctx.interfaces),
    id,
    mode,
    json: raw.json === true,
    maxLossPercent,
    peers: parsePeers(raw.peers),
    service,
  };
}
