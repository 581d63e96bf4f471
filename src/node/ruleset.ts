/**
 * The node ruleset's sync: the desired chains (src/node/nft.ts) installed, read back and kept in
 * step with the devices they name. A pure part (`installReason`, `fingerprintDevices`) decides;
 * `NodeRuleset` reads the kernel, applies one `nft -f -` transaction and verifies it.
 *
 * A hook and a dup/fwd target are bound to an ifindex when the rule loads, and the listing shows
 * names, so a device recreated under the same name cannot be seen in the read-back: the ifindex of
 * every device the ruleset names (the fingerprint) is compared with the one at the last verified
 * install, and the reconciler's "device (re)created" is a second signal (`markRebind`).
 */
import { CapabilityError, KmcastError, errorMessage } from '../errors.js';
import type { IpClient } from '../kernel/ip.js';
import { NftClient } from '../kernel/nft.js';
import type { Logger } from '../log.js';
import type { NodeMetrics } from './metrics.js';
import type { ChainSpec, ReadChain } from './nft.js';
import { NODE_TABLE, parseRuleset, removeScript, renderRuleset, rulesetMismatch } from './nft.js';

/** Every device the chains name (hooks, dup and fwd targets), sorted. Pure. */
export function fingerprintDevices(chains: readonly ChainSpec[]): string[] {
  return [...new Set(chains.flatMap((c) => [c.device, ...c.dups, ...(c.fwd ? [c.fwd] : [])]))].sort();
}

export interface InstallInput {
  readonly want: readonly ChainSpec[];
  /** The read-back; undefined when the table is missing. */
  readonly have: ReadonlyMap<string, ReadChain> | undefined;
  /** The fingerprint now. */
  readonly fingerprint: string;
  /** The fingerprint at the last verified install; undefined before the first one. */
  readonly installed: string | undefined;
  /** A device was (re)created since the last verified install. */
  readonly rebind: boolean;
}

/** Why the ruleset must be (re)installed, or undefined when the kernel already has it. Pure. */
export function installReason(i: InstallInput): string | undefined {
  const mismatch = i.have === undefined ? 'table missing' : rulesetMismatch(i.want, i.have);
  if (mismatch !== undefined) return mismatch;
  if (i.installed === undefined) return 'adopting at start';
  if (i.fingerprint !== i.installed || i.rebind) return 'a device was recreated';
  return undefined;
}

export interface RulesetDeps {
  readonly ip: IpClient;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  /** Called after an apply failed for a reason the next pass may not have (a device vanished). */
  readonly retrySoon: () => void;
}

export class NodeRuleset {
  /** Read back after the last apply (or adoption): what /status and programmed are judged by. */
  private chains = new Map<string, ReadChain>();
  private ok = false;
  private error: string | undefined;
  private installed: string | undefined;
  private rebind = false;

  /** nft in the namespace of deps.ip. */
  private readonly nft: NftClient;

  constructor(private readonly deps: RulesetDeps) {
    this.nft = new NftClient(deps.ip.runner, deps.ip.netns);
  }

  get isInstalled(): boolean {
    return this.ok;
  }

  get lastError(): string | undefined {
    return this.error;
  }

  get size(): number {
    return this.chains.size;
  }

  /** The verified chain `name`, when the ruleset is installed. */
  chain(name: string): ReadChain | undefined {
    return this.ok ? this.chains.get(name) : undefined;
  }

  /** A domain device was (re)created: the next sync re-binds the ruleset. */
  markRebind(): void {
    this.rebind = true;
  }

  private async fingerprint(chains: readonly ChainSpec[]): Promise<string> {
    // One read of every link, not one process per device: at 110 members that was 110 `ip`
    // processes per pass, and a pass that long delays the joins queued behind it.
    const links = new Map((await this.deps.ip.links({ all: true })).map((l) => [l.name, l]));
    return fingerprintDevices(chains)
      .map((n) => `${n}=${links.get(n)?.ifindex ?? 'none'}`)
      .join(',');
  }

  /** The table as the kernel has it now (counters included); undefined when it is missing. */
  async read(): Promise<Map<string, ReadChain> | undefined> {
    const r = await this.nft.listTable('netdev', NODE_TABLE, { json: true });
    return r.code === 0 ? parseRuleset(r.stdout) : undefined;
  }

  /**
   * Installs `want` when it differs from the read-back, when a device it names was recreated, and
   * once at start (the table a previous agent left is replaced atomically: the listing cannot show
   * a hook whose device was recreated meanwhile). Then reads it back: fail closed.
   */
  async sync(want: readonly ChainSpec[]): Promise<void> {
    const { log, metrics } = this.deps;
    const fp = await this.fingerprint(want);
    const have = await this.read();
    const reason = installReason({ want, have, fingerprint: fp, installed: this.installed, rebind: this.rebind });
    if (reason === undefined) {
      this.chains = have!;
      this.ok = true;
      return;
    }
    log.info({ reason, chains: want.length }, 'installing node ruleset');
    try {
      await this.nft.apply(renderRuleset(want));
    } catch (err) {
      this.ok = false;
      this.error = errorMessage(err);
      metrics.rulesetApplies.labels('error').inc();
      if (/Operation not permitted|Permission denied/i.test(this.error)) {
        throw new CapabilityError('install node ruleset: not permitted; the node agent needs CAP_NET_ADMIN', { cause: err });
      }
      // A device vanished between reading and applying (a pod deleted): the next pass re-resolves.
      this.deps.retrySoon();
      throw new KmcastError(`install node ruleset: ${this.error}`, { cause: err });
    }
    const back = await this.read();
    const bad = back === undefined ? 'table missing after apply' : rulesetMismatch(want, back);
    if (bad !== undefined) {
      this.ok = false;
      this.error = `read back: ${bad}`;
      metrics.rulesetApplies.labels('error').inc();
      throw new KmcastError(`verify node ruleset: ${bad}`);
    }
    this.chains = back!;
    this.ok = true;
    this.error = undefined;
    this.rebind = false;
    this.installed = await this.fingerprint(want);
    metrics.rulesetApplies.labels('ok').inc();
  }

  /** Removes the table (uninstall). */
  async remove(): Promise<void> {
    await this.nft.apply(removeScript(), { allowFail: true });
  }
}
