/**
 * The flag-table kit every agent's configuration is written with (sidecar, node agent, gateway):
 * a table of option keys (commander's camelCase) to flags, defaults, the environment variable
 * of each flag (`--heartbeat-interval` -> KMCAST_HEARTBEAT_INTERVAL), and one set of readers that
 * fail with a ConfigError naming the flag and its variable (exit 2). Pure.
 */
import { ConfigError } from '../errors.js';

/** A raw option as commander or the environment gives it. */
export type RawValue = string | boolean | readonly string[] | undefined;
export type RawOptions = Record<string, RawValue>;

/** Flag name (as on the command line) -> env var. */
export function envName(flag: string): string {
  return `KMCAST_${flag.replace(/^--/, '').replace(/-/g, '_').toUpperCase()}`;
}

/** A Linux interface name (IFNAMSIZ: at most 15 bytes). */
export const IF_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;
/** A DNS name (RFC 1123 labels, at most 253 characters, an optional final dot). */
export const DNS_NAME = /^(?=.{1,253}\.?$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** `host[:port]` (the host may be empty: every address); undefined when it is not that. Pure. */
export function parseHostPort(s: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^([^:]*)(?::(\d{1,5}))?$/.exec(s.trim());
  if (!m) return undefined;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? '', port };
}

export class FlagTable {
  constructor(
    /** Option key -> flag. */
    readonly flags: Readonly<Record<string, string>>,
    readonly defaults: Readonly<RawOptions> = {},
    /** Keys given more than once (and as a comma list in the environment). */
    readonly repeatable: ReadonlySet<string> = new Set(),
  ) {}

  flag(key: string): string {
    return this.flags[key] ?? key;
  }

  /** Explicit flags win over env vars, env vars over defaults. A repeatable flag stays an array. */
  merge(given: RawOptions, env: NodeJS.ProcessEnv): RawOptions {
    const out: RawOptions = { ...this.defaults };
    for (const [key, flag] of Object.entries(this.flags)) {
      const e = env[envName(flag)];
      if (e !== undefined && e !== '') out[key] = this.repeatable.has(key) ? e.split(',') : e;
      const f = given[key];
      if (f !== undefined && !(Array.isArray(f) && f.length === 0)) out[key] = f;
    }
    return out;
  }

  fail(key: string, message: string): never {
    const flag = this.flag(key);
    throw new ConfigError(`${flag} (or ${envName(flag)}): ${message}`, { fields: { flag } });
  }

  /** A trimmed non-empty string, or undefined. */
  str(raw: RawOptions, key: string): string | undefined {
    const v = raw[key] ?? this.defaults[key];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  }

  /** Every value of a repeatable flag (a single string is one value). */
  list(raw: RawOptions, key: string): string[] {
    const v = raw[key];
    if (v === undefined || typeof v === 'boolean') return [];
    return typeof v === 'string' ? [v] : [...v];
  }

  int(raw: RawOptions, key: string, min: number, max: number): number {
    const v = raw[key] ?? this.defaults[key];
    const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) this.fail(key, `invalid value ${JSON.stringify(v)} (must be an integer between ${min} and ${max})`);
    return n;
  }

  bool(raw: RawOptions, key: string): boolean {
    const v = raw[key] ?? this.defaults[key];
    if (v === undefined || v === false) return false;
    if (v === true) return true;
    const t = typeof v === 'string' ? v.trim().toLowerCase() : '';
    if (['', '0', 'false', 'no', 'off'].includes(t)) return false;
    if (['1', 'true', 'yes', 'on'].includes(t)) return true;
    return this.fail(key, `invalid value ${JSON.stringify(v)} (must be true or false)`);
  }
}
