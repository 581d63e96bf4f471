/**
 * Peers from the A records of the headless Service; on an IPv6-only cluster from its AAAA records
 * (`family`: 4 the A records, 6 the AAAA ones, `auto` the A records or, when the name has none,
 * the AAAA ones: an IPv6-only Service's members, while a dual-stack one keeps its IPv4 identity). A failed lookup (timeout, SERVFAIL, refused)
 * throws so the caller keeps the last known set; NXDOMAIN/NODATA is an answer: no members.
 * An A record that is no unicast address (0.0.0.0, multicast, class E, broadcast) is no pod or
 * node: it is left out, for every agent alike, and `onIgnored` says so when that set changes.
 */
import { promises as dns } from 'node:dns';
import { isUnicast, sortIpv4 } from '../net/ipv4.js';
import { canonicalIpv6, compareIpv6, isIpv6Unicast } from '../net/ipv6.js';

export interface DnsResolverOptions {
  /** "IP:PORT" resolver override; undefined = the system's (/etc/resolv.conf). */
  readonly server?: string | undefined;
  readonly timeoutMs?: number;
  /** The answer's records that are not unicast, left out; called when they change ([] once they are gone). */
  readonly onIgnored?: (name: string, ignored: readonly string[]) => void;
  /** Which records: 4 (A, the default), 6 (AAAA) or `auto` (A, else AAAA). */
  readonly family?: DnsFamily;
}

export type DnsFamily = 4 | 6 | 'auto';

export class DnsDiscovery {
  private readonly resolver: dns.Resolver;
  private ignored = '';

  constructor(
    readonly name: string,
    private readonly options: DnsResolverOptions = {},
  ) {
    this.resolver = new dns.Resolver({ timeout: options.timeoutMs ?? 2000, tries: 2 });
    if (options.server) this.resolver.setServers([options.server]);
  }

  /** The unicast member IPs, sorted (IPv6 ones in RFC 5952 text); [] when the name has no records of the family. */
  async resolve(): Promise<string[]> {
    const family = this.options.family ?? 4;
    let answer = family === 6 ? [] : await this.lookup(4);
    if (family === 6 || (family === 'auto' && answer.length === 0)) {
      answer = (await this.lookup(6)).map((a) => canonicalIpv6(a) ?? a);
      return [...new Set(unicastOnly6(answer, (ignored) => this.noteIgnored(ignored)))].sort(compareIpv6);
    }
    return sortIpv4(new Set(unicastOnly(answer, (ignored) => this.noteIgnored(ignored))));
  }

  /**
   * The unicast IPv6 addresses of the name's AAAA records (RFC 5952, sorted); [] when it has
   * none. A dual-stack headless Service answers both; the gateway needs its pods' IPv6 addresses.
   */
  async resolve6(): Promise<string[]> {
    const ips = (await this.lookup(6)).map((a) => canonicalIpv6(a)).filter((a): a is string => a !== undefined && isIpv6Unicast(a));
    return [...new Set(ips)].sort(compareIpv6);
  }

  private async lookup(family: 4 | 6): Promise<string[]> {
    try {
      return family === 4 ? await this.resolver.resolve4(this.name) : await this.resolver.resolve6(this.name);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') return [];
      throw err;
    }
  }

  private noteIgnored(ignored: readonly string[]): void {
    const key = ignored.join();
    if (key === this.ignored) return;
    this.ignored = key;
    this.options.onIgnored?.(this.name, ignored);
  }

  cancel(): void {
    this.resolver.cancel();
  }
}

/** The unicast addresses of `ips`; the others are reported (sorted, possibly []). Pure. */
export function unicastOnly(ips: readonly string[], report: (ignored: string[]) => void = () => undefined): string[] {
  const ignored = sortIpv4(new Set(ips.filter((ip) => !isUnicast(ip))));
  report(ignored);
  return ips.filter((ip) => isUnicast(ip));
}

/** unicastOnly for AAAA answers: not ::, loopback, link-local, multicast or IPv4-mapped. Pure. */
export function unicastOnly6(ips: readonly string[], report: (ignored: string[]) => void = () => undefined): string[] {
  report([...new Set(ips.filter((ip) => !isIpv6Unicast(ip)))].sort(compareIpv6));
  return ips.filter((ip) => isIpv6Unicast(ip));
}

/** The agents' one log line for records left out (both modes say it the same way). */
export function ignoredDnsRecords(log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }, name: string, ignored: readonly string[]): void {
  if (ignored.length) log.warn({ service: name, ignored }, 'DNS answer holds addresses that are not unicast; ignoring them');
  else log.info({ service: name }, 'DNS answer holds only unicast addresses again');
}
