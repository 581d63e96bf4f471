/**
 * Peers from the A records of the headless Service. A failed lookup (timeout, SERVFAIL, refused)
 * throws so the caller keeps the last known set; NXDOMAIN/NODATA is an answer: no members.
 */
import { promises as dns } from 'node:dns';
import { sortIpv4 } from '../net/ipv4.js';

export interface DnsResolverOptions {
  /** "IP:PORT" resolver override; undefined = the system's (/etc/resolv.conf). */
  readonly server?: string | undefined;
  readonly timeoutMs?: number;
}

export class DnsDiscovery {
  private readonly resolver: dns.Resolver;

  constructor(
    readonly name: string,
    options: DnsResolverOptions = {},
  ) {
    this.resolver = new dns.Resolver({ timeout: options.timeoutMs ?? 2000, tries: 2 });
    if (options.server) this.resolver.setServers([options.server]);
  }

  /** The member IPs, sorted; [] when the name has no A records. */
  async resolve(): Promise<string[]> {
    try {
      return sortIpv4(new Set(await this.resolver.resolve4(this.name)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') return [];
      throw err;
    }
  }

  cancel(): void {
    this.resolver.cancel();
  }
}
