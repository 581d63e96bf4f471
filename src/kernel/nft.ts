/**
 * The `nft` command for one network namespace: the only file that writes `nft` argv. Rulesets
 * are data: the modules that own them render the scripts (src/overlay/allowlist.ts and
 * capture.ts, src/node/nft.ts, src/gateway/nft.ts) and parse the listings; this client only
 * applies, checks, lists and deletes. A script goes in as one `nft -f -` transaction (stdin), so
 * a table is replaced atomically or not at all.
 */
import type { RunResult, Runner } from './runner.js';

/** nftables address families (a table's first word). */
export type NftFamily = 'ip' | 'ip6' | 'inet' | 'arp' | 'bridge' | 'netdev';

export class NftClient {
  constructor(
    readonly runner: Runner,
    /** The namespace to act in; undefined = our own. */
    readonly netns?: string,
  ) {}

  /**
   * Applies `script` in one transaction (`nft -f -`). Throws the runner's CommandError (nft's
   * message on stderr) when nft refuses it, unless `allowFail` (then the result tells).
   */
  async apply(script: string, opts: { readonly allowFail?: boolean } = {}): Promise<RunResult> {
    return await this.runner.run(['nft', '-f', '-'], { netns: this.netns, input: script, allowFail: opts.allowFail ?? false });
  }

  /** Checks `script` without applying anything (`nft --check -f -`); resolves whatever the verdict. */
  async check(script: string): Promise<RunResult> {
    return await this.runner.run(['nft', '--check', '-f', '-'], { netns: this.netns, input: script, allowFail: true });
  }

  /**
   * A table as nft lists it, as text or (`json`) `nft -j`; resolves whatever the exit code (a
   * missing table is a non-zero code, not an error).
   */
  async listTable(family: NftFamily, table: string, opts: { readonly json?: boolean } = {}): Promise<RunResult> {
    const argv = opts.json ? ['nft', '-j', 'list', 'table', family, table] : ['nft', 'list', 'table', family, table];
    return await this.runner.run(argv, { netns: this.netns, allowFail: true });
  }

  /** One chain as nft lists it (text); throws when it cannot be listed. */
  async listChain(family: NftFamily, table: string, chain: string): Promise<string> {
    return (await this.runner.run(['nft', 'list', 'chain', family, table, chain], { netns: this.netns })).stdout;
  }

  /** Deletes a table; resolves whatever the exit code (a missing table is nothing to delete). */
  async deleteTable(family: NftFamily, table: string): Promise<RunResult> {
    return await this.runner.run(['nft', 'delete', 'table', family, table], { netns: this.netns, allowFail: true });
  }

  /** `nft --version`; resolves whatever the exit code, rejects when nft cannot be started. */
  async version(): Promise<RunResult> {
    return await this.runner.run(['nft', '--version'], { netns: this.netns, allowFail: true });
  }

  /** `nft list tables`; resolves whatever the exit code (e.g. EPERM without CAP_NET_ADMIN). */
  async listTables(): Promise<RunResult> {
    return await this.runner.run(['nft', 'list', 'tables'], { netns: this.netns, allowFail: true });
  }
}
