/**
 * The `--key-file` format (docs/protocol.md, "Keys"): UTF-8 text, one key per line, the first
 * line signs and every line verifies, so keys rotate without downtime. Each line, trimmed:
 *   - empty, or starting with `#`: ignored;
 *   - `hex:<even number of hex digits>`: those bytes;
 *   - `base64:<standard or URL-safe base64>`: those bytes;
 *   - anything else: the line's own UTF-8 bytes (so `openssl rand -base64 32 > key` works as is,
 *     and every member reads the same bytes whatever the text looks like).
 * Refused (exit 2): a prefix in another case (`HEX:`, `Base64:`: meant as a prefix, but it would
 * be raw text), and weak keys (one byte repeated, all zeros included).
 * Parsing is pure; `loadKeyFile` reads the file and `KeyFileWatcher` re-reads it when it changes
 * (a Kubernetes Secret update), so keys rotate without a restart.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { ConfigError, errorMessage } from '../errors.js';

/** 128 bits: less is guessable offline from one captured datagram. */
export const MIN_KEY_BYTES = 16;
/** Each datagram is checked against every key; a bound keeps a flood of forgeries cheap. */
export const MAX_KEYS = 16;

const GENERATE_HINT = 'generate one with "openssl rand -base64 32"';

function keyError(source: string, why: string, fix: string): ConfigError {
  return new ConfigError(`load --key-file ${source}: ${why}; ${fix}`, { fields: { flag: '--key-file', source } });
}

function decodeLine(line: string, lineNo: number, source: string): Buffer {
  const prefix = /^(hex|base64):/i.exec(line)?.[0];
  if (prefix !== undefined && prefix !== prefix.toLowerCase()) {
    throw keyError(
      source,
      `line ${lineNo} starts with "${prefix}", which is not a prefix (they are lower-case "${prefix.toLowerCase()}") but would be used as raw text`,
      `write the lower-case "${prefix.toLowerCase()}" prefix`,
    );
  }
  if (line.startsWith('hex:')) {
    const digits = line.slice(4).trim();
    if (!/^([0-9a-fA-F]{2})+$/.test(digits)) {
      throw keyError(source, `line ${lineNo} starts with "hex:" but is not an even number of hex digits`, 'fix the line or drop the prefix to use the text as is');
    }
    return Buffer.from(digits, 'hex');
  }
  if (line.startsWith('base64:')) {
    const text = line.slice(7).trim();
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text) || text.replace(/=+$/, '').length % 4 === 1) {
      throw keyError(source, `line ${lineNo} starts with "base64:" but is not base64`, 'fix the line or drop the prefix to use the text as is');
    }
    return Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
  }
  return Buffer.from(line, 'utf8');
}

/** Keys from the text of a key file, in file order (index 0 signs). `source` names the file in errors. */
export function parseKeys(text: string, source = '(key file)'): Buffer[] {
  const keys: Buffer[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const key = decodeLine(line, index + 1, source);
    if (key.length < MIN_KEY_BYTES) {
      throw keyError(source, `the key on line ${index + 1} is ${key.length} bytes, shorter than ${MIN_KEY_BYTES}`, `use a longer key (${GENERATE_HINT})`);
    }
    if (key.every((b) => b === key[0])) {
      throw keyError(source, `the key on line ${index + 1} is weak: ${key.length} times the same byte (0x${key[0]!.toString(16).padStart(2, '0')})`, `use a random key (${GENERATE_HINT})`);
    }
    keys.push(key);
  });
  if (keys.length === 0) {
    throw keyError(source, 'no key in the file (it is empty or only comments)', `put one key per line (${GENERATE_HINT})`);
  }
  if (keys.length > MAX_KEYS) {
    throw keyError(source, `${keys.length} keys, more than ${MAX_KEYS}`, 'keep the signing key and the ones still in use, remove the others');
  }
  return keys;
}

/**
 * The rule for keys that change at run time (both agents' control channels): the first signs,
 * all verify; a channel started with keys cannot drop to none, and one started without cannot
 * start signing (restart for that: its peers would refuse it, or it them, mid-stream).
 */
export function checkKeyChange(current: readonly Buffer[], next: readonly Buffer[]): void {
  if (next.length === 0 && current.length > 0) throw new TypeError('control channel: cannot drop authentication at run time');
  if (next.length > 0 && current.length === 0) throw new TypeError('control channel: cannot start authenticating at run time');
}

/** Reads and parses `--key-file`. Every failure is a ConfigError naming the flag (exit 2). */
export async function loadKeyFile(path: string): Promise<Buffer[]> {
  return parseKeys(await readKeyText(path), path);
}

/** A key file is a few lines of keys; anything bigger is a mistake (or /dev/zero). */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

/**
 * Reads at most MAX_KEY_FILE_BYTES of a regular file (a Secret's symlink is followed): a device,
 * FIFO or directory, or a bigger file, is refused before it is read, never read into memory.
 */
async function readKeyText(path: string): Promise<string> {
  const fix = 'mount the Secret and point --key-file at the file inside it';
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw keyError(path, `cannot read it (${errorMessage(err)})`, fix);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw keyError(path, 'it is not a regular file', fix);
    if (st.size > MAX_KEY_FILE_BYTES) throw keyError(path, `it has ${st.size} bytes, more than a key file's limit of ${MAX_KEY_FILE_BYTES}`, fix);
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_KEY_FILE_BYTES) throw keyError(path, `it has more than a key file's limit of ${MAX_KEY_FILE_BYTES} bytes`, fix);
    return buf.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw keyError(path, `cannot read it (${errorMessage(err)})`, fix);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

export interface KeyFileWatcherOptions {
  /** How often the file is re-read (default 5 s). A Secret volume update lands within about a minute. */
  readonly intervalMs?: number;
  /** New, valid keys (the file changed). */
  readonly onChange: (keys: Buffer[]) => void;
  /** The file changed but cannot be used; the last good keys stay in use. */
  readonly onError?: (err: ConfigError) => void;
}

const digest = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * Re-reads `--key-file` periodically and reports valid changes. Polling (not inotify): a Secret
 * volume is updated by swapping a symlinked directory, which file watches on the old inode miss.
 * A bad or unreadable file is reported once per distinct content and changes nothing.
 */
export class KeyFileWatcher {
  private current: Buffer[] = [];
  private lastText: string | undefined;
  private lastBad: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading = false;

  constructor(
    readonly path: string,
    private readonly options: KeyFileWatcherOptions,
  ) {}

  /** Loads the file (throws a ConfigError like loadKeyFile) and starts watching it. */
  async start(): Promise<Buffer[]> {
    const text = await readKeyText(this.path);
    this.current = parseKeys(text, this.path);
    this.lastText = digest(text);
    this.timer = setInterval(() => void this.check(), this.options.intervalMs ?? 5_000);
    this.timer.unref();
    return this.current;
  }

  keys(): Buffer[] {
    return this.current;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One re-read (the timer calls it; exposed for tests and a forced reload). */
  async check(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      let text: string;
      try {
        text = await readKeyText(this.path);
      } catch (err) {
        this.bad('unreadable', err as ConfigError);
        return;
      }
      const d = digest(text);
      if (d === this.lastText) return;
      let keys: Buffer[];
      try {
        keys = parseKeys(text, this.path);
      } catch (err) {
        this.bad(d, err as ConfigError);
        return;
      }
      this.lastText = d;
      this.lastBad = undefined;
      this.current = keys;
      this.options.onChange(keys);
    } finally {
      this.reading = false;
    }
  }

  private bad(id: string, err: ConfigError): void {
    if (this.lastBad === id) return;
    this.lastBad = id;
    this.options.onError?.(err);
  }
}

/**
 * Every agent's way to load --key-file and follow it (sidecar, node agent, gateway): the watcher
 * started, `apply` called with each new valid set, the reload counted by result and logged with
 * the same lines in every mode. Returns the watcher (to stop it) and the first keys.
 */
export async function watchKeyFile(
  path: string,
  o: {
    readonly apply: (keys: Buffer[]) => void;
    readonly reloads: { inc(labels: { result: 'ok' | 'error' }): void };
    readonly log: { info(obj: object, msg: string): void; error(obj: object, msg: string): void };
  },
): Promise<{ watcher: KeyFileWatcher; keys: Buffer[] }> {
  const watcher = new KeyFileWatcher(path, {
    onChange: (keys) => {
      o.apply(keys);
      o.reloads.inc({ result: 'ok' });
      o.log.info({ keys: keys.length }, 'key file changed: new keys in use (the first signs, all verify)');
    },
    onError: (err) => {
      o.reloads.inc({ result: 'error' });
      o.log.error({ err: err.message }, 'key file changed but cannot be used; keeping the keys in use');
    },
  });
  return { watcher, keys: await watcher.start() };
}
