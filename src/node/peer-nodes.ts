/**
 * Who is in each domain, from DNS, and which peer nodes are still alive: the domains' member
 * lists (each --service's A records), the peer node list (--peers-service, this node left out)
 * that both the domain's and its gateways' peer tables take, and the expiry tick over every
 * domain's peer nodes (membership/expiry.ts, the sidecar's rule). A failed lookup keeps the last
 * list and says so.
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { EXPIRED_MESSAGE, SUSPECT_MESSAGE } from '../membership/expiry.js';
import type { DomainRuntime } from './domain.js';

/** A DNS name's unicast A records (src/discovery/dns.ts). */
export interface Resolver {
  resolve(): Promise<string[]>;
}

type ResolvedDomain = Pick<DomainRuntime, 'domain' | 'listed' | 'table' | 'gateways'> & { readonly dns: Resolver };

/** Re-resolves every domain's members and the peer nodes; true when a member list changed. */
export async function resolveDomains(domains: readonly ResolvedDomain[], peers: Resolver | undefined, nodeIp: string, log: Logger): Promise<boolean> {
  let changed = false;
  await Promise.all(
    domains.map(async (d) => {
      try {
        const ips = await d.dns.resolve();
        if (ips.join() !== d.listed.join()) {
          d.listed = ips;
          changed = true;
        }
      } catch (err) {
        log.warn({ domain: d.domain.service, err: errorMessage(err) }, 'resolve domain failed; keeping the last member list');
      }
    }),
  );
  if (peers) {
    try {
      const ips = (await peers.resolve()).filter((p) => p !== nodeIp);
      for (const d of domains) {
        d.table.setListed('dns', ips);
        d.gateways.setListed('dns', ips);
      }
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'resolve --peers-service failed; keeping the last peer list');
    }
  }
  return changed;
}

/** The expiry rule's tick over every domain's peer nodes (a quarter heartbeat); true when one expired. */
export function expirePeerNodes(domains: readonly Pick<DomainRuntime, 'domain' | 'table' | 'expiry'>[], now: number, log: Logger): boolean {
  let expired = false;
  for (const d of domains) {
    const t = d.expiry.tick(d.table, now);
    if (t.expired.length) {
      expired = true;
      log.warn({ domain: d.domain.service, peers: t.expired }, EXPIRED_MESSAGE);
    }
    if (t.suspects?.length) log.info({ domain: d.domain.service, peers: t.suspects }, SUSPECT_MESSAGE);
  }
  return expired;
}
