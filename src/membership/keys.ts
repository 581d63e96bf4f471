/**
 * The `--key-file` format (docs/protocol.md, "Keys"): UTF-8 text, one key per line, the first
 * line signs and every line verifies, so keys rotate without downtime. Each line, trimmed:
 *   - empty, or starting with `#`: ignored;
 *   - `hex:<even number of hex digits>`: those bytes;
 *   - `base64:<standard or URL-safe base64>`: those bytes;
 *   - anything else: the line's own UTF-8 bytes (so `openssl rand -base64 32 > key` works as is,
 *     and every member reads the same bytes whatever the text looks like).
 * Parsing is pure; only `loadKeyFile` reads the file.
 */
import { readFile } from 'node:fs/promises';
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

/** Reads and parses `--key-file`. Every failure is a ConfigError naming the flag (exit 2). */
export async function loadKeyFile(path: string): Promise<Buffer[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw keyError(path, `cannot read it (${errorMessage(err)})`, 'mount the Secret and point --key-file at the file inside it');
  }
  return parseKeys(text, path);
}
