/**
 * The gateway's flag set of `kmcast node` (`kmcast gateway` requires it): validated here, pure,
 * with messages that name the flag. Absent --gateway-interface means no gateway at all.
 */
import { FlagTable, IF_NAME } from '../runtime/flags.js';
import type { RawOptions } from '../runtime/flags.js';
import type { GatewayGroup } from './groups.js';
import { parseGatewayGroups } from './groups.js';

export interface GatewayConfig {
  /** The node's interface facing the outside network. */
  readonly interface: string;
  /** The domain (--service) served. */
  readonly service: string;
  readonly groups: readonly GatewayGroup[];
  /** Outbound datagrams leave with the interface's address and MAC as source. */
  readonly snat: boolean;
  /** Datagrams with a lower IP TTL do not cross (1: every TTL crosses). */
  readonly minTtl: number;
  /** Datagrams per second per group and direction; 0 = no limit. */
  readonly rate: number;
  /** Datagrams per second per direction, all groups together; 0 = no limit. */
  readonly rateTotal: number;
  /** Most groups joined on the interface at once. */
  readonly maxJoins: number;
}

export const GATEWAY_FLAGS: Record<string, string> = {
  gatewayInterface: '--gateway-interface',
  gatewayGroup: '--gateway-group',
  gatewayService: '--gateway-service',
  gatewaySnat: '--gateway-snat',
  gatewayMinTtl: '--gateway-min-ttl',
  gatewayRate: '--gateway-rate',
  gatewayRateTotal: '--gateway-rate-total',
  gatewayMaxJoins: '--gateway-max-joins',
};

/** --gateway-max-joins when not given (one socket per group), and its largest value. */
export const MAX_JOINS = 1024;
export const MAX_JOINS_LIMIT = 16_384;

export const GATEWAY_DEFAULTS: Record<string, string> = { gatewaySnat: 'on', gatewayMinTtl: '1', gatewayRate: '10000', gatewayMaxJoins: String(MAX_JOINS) };

/** Largest --gateway-rate: the nftables limit statement's range is far above, the NIC is not. */
export const MAX_GATEWAY_RATE = 10_000_000;

/** --gateway-rate-total when not given: ten groups at the full per-group rate (0 stays 0). */
export const RATE_TOTAL_FACTOR = 10;
export function defaultRateTotal(rate: number): number {
  return Math.min(MAX_GATEWAY_RATE, rate * RATE_TOTAL_FACTOR);
}

const TABLE = new FlagTable(GATEWAY_FLAGS, GATEWAY_DEFAULTS);

/** `flag` is the flag itself here (the gateway's messages name what the user typed). */
function fail(flag: string, message: string): never {
  const key = Object.keys(GATEWAY_FLAGS).find((k) => GATEWAY_FLAGS[k] === flag) ?? flag;
  return TABLE.fail(key, message);
}

type Raw = RawOptions;

function list(v: Raw[string]): string[] {
  return TABLE.list({ v }, 'v');
}

function int(raw: Raw, key: string, min: number, max: number): number {
  return TABLE.int(raw, key, min, max);
}

/**
 * The gateway of a node agent serving `services`, or undefined when --gateway-interface is not
 * given (then no other --gateway-* flag may be either: a half-configured gateway is a mistake).
 */
export function parseGatewayConfig(raw: Raw, services: readonly string[], opts: { required?: boolean } = {}): GatewayConfig | undefined {
  const str = (k: string): string | undefined => {
    const v = raw[k];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const iface = str('gatewayInterface');
  const groupValues = list(raw.gatewayGroup);
  if (iface === undefined) {
    if (opts.required) fail('--gateway-interface', 'kmcast gateway needs the interface facing the outside network (e.g. --gateway-interface eth1)');
    const stray = Object.keys(GATEWAY_FLAGS).find((k) => k !== 'gatewayInterface' && (k === 'gatewayGroup' ? groupValues.length > 0 : str(k) !== undefined));
    if (stray) fail(GATEWAY_FLAGS[stray]!, 'needs --gateway-interface (the interface facing the outside network)');
    return undefined;
  }
  if (!IF_NAME.test(iface)) fail('--gateway-interface', `${JSON.stringify(iface)} is not an interface name`);
  const groups = parseGatewayGroups(groupValues);
  if (groups.length === 0) {
    fail('--gateway-group', 'nothing would cross: give at least one GROUP[/LEN]=in|out|both (e.g. 239.10.0.0/16=in or 224.0.0.251=both)');
  }
  let service = str('gatewayService');
  if (service === undefined) {
    if (services.length !== 1) fail('--gateway-service', `the node agent serves ${services.length} domains (${services.join(', ')}); say which one the gateway serves`);
    service = services[0]!;
  } else {
    const found = services.find((s) => s.toLowerCase() === service!.toLowerCase());
    if (!found) fail('--gateway-service', `${JSON.stringify(service)} is not one of the --service domains (${services.join(', ')})`);
    service = found;
  }
  const snat = str('gatewaySnat') ?? GATEWAY_DEFAULTS.gatewaySnat;
  if (snat !== 'on' && snat !== 'off') fail('--gateway-snat', `invalid value ${JSON.stringify(snat)} (must be on or off)`);
  const rate = int(raw, 'gatewayRate', 0, MAX_GATEWAY_RATE);
  return {
    interface: iface,
    service,
    groups,
    snat: snat === 'on',
    minTtl: int(raw, 'gatewayMinTtl', 1, 255),
    rate,
    rateTotal: str('gatewayRateTotal') === undefined ? defaultRateTotal(rate) : int(raw, 'gatewayRateTotal', 0, MAX_GATEWAY_RATE),
    maxJoins: int(raw, 'gatewayMaxJoins', 1, MAX_JOINS_LIMIT),
  };
}
