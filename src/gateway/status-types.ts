/** The gateway's part of the node agent's `/status`. */
import type { GatewayDirection } from './groups.js';

export interface GatewayTraffic {
  readonly group: string;
  readonly direction: 'in' | 'out';
  readonly datagrams: number;
  readonly bytes: number;
  /** By reason: rate (over --gateway-rate), ttl (below --gateway-min-ttl), loop. */
  readonly dropped: Readonly<Record<string, number>>;
}

export interface GatewayStatus {
  readonly service: string;
  readonly interface: string;
  readonly address: string;
  /** The interface's global IPv6 address, with IPv6 groups: the source of their outbound copies. */
  readonly address6?: string;
  readonly mac: string;
  readonly ifindex: number;
  /** This gateway forwards (elected); false while standby or settling after start. */
  readonly active: boolean;
  readonly activeGateway?: string;
  readonly role: 'elected' | 'lower-ip-alive' | 'settling';
  readonly snat: boolean;
  readonly minTtl: number;
  readonly rate: number;
  /** Per direction, all groups together; 0 = no limit. */
  readonly rateTotal: number;
  readonly groups: readonly { readonly prefix: string; readonly direction: GatewayDirection }[];
  /** Groups joined on the interface now. */
  readonly joined: readonly string[];
  readonly joinFailures: readonly { readonly group: string; readonly error: string }[];
  /** Inbound groups members want that are not joined (over --gateway-max-joins `max`); the first few listed. */
  readonly unjoined: { readonly count: number; readonly groups: readonly string[]; readonly max: number };
  /** The other gateways of the domain: node IP, state and (alive) their outside address. */
  readonly gateways: readonly { readonly ip: string; readonly state: string; readonly address?: string }[];
  readonly table: { readonly installed: boolean; readonly lastError?: string };
  /** Per group and direction, the busiest (at most 256 per direction); the rest add up in group `other`. */
  readonly traffic: readonly GatewayTraffic[];
  /**
   * Every drop by direction and reason, whether or not its group got a row: rate, ttl, loop, and
   * total (over --gateway-rate-total), full (the per-group meter had no room for the group).
   */
  readonly drops: { readonly in: Readonly<Record<string, number>>; readonly out: Readonly<Record<string, number>> };
}
