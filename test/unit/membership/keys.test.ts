import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../src/errors.js';
import { KeyFileWatcher, MAX_KEY_FILE_BYTES, MAX_KEYS, MIN_KEY_BYTES, loadKeyFile, parseKeys } from '../../../src/membership/keys.js';

describe('key file', () => {
  it('reads hex, base64 and raw-text keys in file order, skipping blanks and comments', () => {
    const raw = 'a raw text key of some length';
    const keys = parseKeys(['# signing key first', '', 'hex:00112233445566778899aabbccddeeff', '   base64:AAECAwQFBgcICQoLDA0ODw==  ', `${raw}\r`, 'base64:-_-_-_-_-_-_-_-_-_-_-w'].join('\n'));
    assert.equal(keys.length, 4);
    assert.equal(keys[0]?.toString('hex'), '00112233445566778899aabbccddeeff');
    assert.equal(keys[1]?.toString('hex'), '000102030405060708090a0b0c0d0e0f');
    assert.equal(keys[2]?.toString('utf8'), raw, 'raw text is trimmed, CRLF tolerated');
    assert.equal(keys[3]?.length, 16, 'URL-safe base64');
  });

  it('takes an unprefixed hex or base64 line as text, the same bytes on every member', () => {
    const line = 'q1XwMkz3xw4VZ0N6g3n4bq0ZP0x9k8f2m1Yc9mY2b3A=';
    assert.deepEqual(parseKeys(line), [Buffer.from(line, 'utf8')]);
  });

  const refusals: Array<[string, string, RegExp]> = [
    ['empty', '', /no key in the file/],
    ['only comments', '# nothing\n\n   # here\n', /no key in the file/],
    ['too short text', 'short', new RegExp(`line 1 is 5 bytes, shorter than ${MIN_KEY_BYTES}`)],
    ['too short hex', '# c\nhex:0011', /line 2 is 2 bytes/],
    ['bad hex', 'hex:xyz', /not an even number of hex digits/],
    ['odd hex', 'hex:001', /not an even number of hex digits/],
    ['bad base64', 'base64:!!!!', /is not base64/],
    ['too many keys', Array.from({ length: MAX_KEYS + 1 }, (_, i) => `key-number-${i}-padding-padding`).join('\n'), /more than 16/],
  ];
  for (const [name, text, why] of refusals) {
    it(`refuses ${name} with a ConfigError naming --key-file`, () => {
      assert.throws(
        () => parseKeys(text, 'k.txt'),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, /^load --key-file k\.txt: /);
          assert.match(err.message, why);
          assert.equal(err.exitCode, 2);
          return true;
        },
      );
    });
  }

  it('loads a file, and refuses an unreadable one with what to do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kmc-keys-'));
    try {
      const file = join(dir, 'key');
      await writeFile(file, 'hex:00112233445566778899aabbccddeeff\n');
      assert.equal((await loadKeyFile(file))[0]?.length, 16);
      await assert.rejects(loadKeyFile(join(dir, 'missing')), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /^load --key-file .*missing: cannot read it \(.*ENOENT.*\); mount the Secret/);
        return true;
      });
      await assert.rejects(loadKeyFile(dir), /not a regular file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('key file: weak or ambiguous keys are refused (exit 2)', () => {
  const refused = (text: string, pattern: RegExp): void => {
    assert.throws(
      () => parseKeys(text, 'k'),
      (err: unknown) => err instanceof ConfigError && err.exitCode === 2 && /--key-file/.test(err.message) && pattern.test(err.message),
    );
  };
  it('a prefix in another case (HEX:, Base64:) is ambiguous, not raw text', () => {
    refused('HEX:00112233445566778899aabbccddeeff', /line 1.*"HEX:".*lower-case "hex:"/);
    refused('Base64:AAECAwQFBgcICQoLDA0ODw==', /line 1.*"Base64:".*lower-case "base64:"/);
  });
  it('a key of one repeated byte (all zeros included) is weak', () => {
    refused('hex:00000000000000000000000000000000', /line 1.*weak.*same byte/);
    refused('aaaaaaaaaaaaaaaaaaaaaaaa', /line 1.*weak/);
    refused('base64://///////////////////w==', /weak.*0xff/);
  });
});

describe('key file watcher: a changed Secret is re-read without a restart', () => {
  it('reports new keys when the file changes, keeps the old ones on a bad edit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kmc-keys-'));
    const path = join(dir, 'key');
    const k1 = 'hex:00112233445566778899aabbccddeeff';
    const k2 = 'hex:ffeeddccbbaa99887766554433221100';
    await writeFile(path, `${k1}\n`);
    const seen: string[][] = [];
    const errors: string[] = [];
    const w = new KeyFileWatcher(path, { intervalMs: 20, onChange: (keys) => seen.push(keys.map((k) => k.toString('hex'))), onError: (err) => errors.push(err.message) });
    try {
      assert.deepEqual(
        (await w.start()).map((k) => k.toString('hex')),
        ['00112233445566778899aabbccddeeff'],
      );
      const until = async (what: string, fn: () => boolean): Promise<void> => {
        for (let i = 0; i < 250 && !fn(); i++) await new Promise((r) => setTimeout(r, 20));
        assert.ok(fn(), what);
      };
      await writeFile(path, `${k2}\n${k1}\n`);
      await until('the new keys are reported', () => seen.length === 1);
      assert.deepEqual(seen[0], ['ffeeddccbbaa99887766554433221100', '00112233445566778899aabbccddeeff']);
      await writeFile(path, 'HEX:0011\n');
      await until('the bad edit is reported', () => errors.length === 1);
      assert.match(errors[0]!, /--key-file/);
      assert.equal(seen.length, 1, 'no keys reported for a bad file');
      assert.deepEqual(w.keys().map((k) => k.toString('hex'))[0], 'ffeeddccbbaa99887766554433221100', 'the last good keys stay');
    } finally {
      w.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a device and a file over the size limit before reading them, naming the flag', async () => {
    const rss = process.memoryUsage().rss;
    await assert.rejects(loadKeyFile('/dev/zero'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^load --key-file \/dev\/zero: it is not a regular file; /);
      return true;
    });
    assert.ok(process.memoryUsage().rss - rss < 32 * 1024 * 1024, 'nothing of /dev/zero was read into memory');
    const dir = await mkdtemp(join(tmpdir(), 'kmc-keys-'));
    try {
      const big = join(dir, 'big');
      await writeFile(big, `hex:00112233445566778899aabbccddeeff\n${'#'.repeat(MAX_KEY_FILE_BYTES)}\n`);
      await assert.rejects(loadKeyFile(big), new RegExp(`more than a key file's limit of ${MAX_KEY_FILE_BYTES}`));
      const edge = join(dir, 'edge');
      const line = 'hex:00112233445566778899aabbccddeeff\n';
      await writeFile(edge, line + '#'.repeat(MAX_KEY_FILE_BYTES - line.length - 1) + '\n');
      assert.equal((await loadKeyFile(edge)).length, 1, 'a file of exactly the limit loads');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
