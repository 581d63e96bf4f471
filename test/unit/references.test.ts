import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/unit/references.test.js -> the checkout
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function sources(dir: string, out: string[] = []): string[] {
  for (const f of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, f);
    if (statSync(join(ROOT, rel)).isDirectory()) {
      if (f !== 'node_modules' && !f.startsWith('.')) sources(rel, out);
    } else if (/\.(ts|md|mjs)$/.test(f)) out.push(rel);
  }
  return out;
}

test('every repository path that code comments and docs cite exists', () => {
  const files = ['README.md', ...['src', 'docs', 'test', 'bench', 'scripts'].flatMap((d) => sources(d))];
  const cited = /(?<![\w/.-])((?:docs|test|src|bench|deploy|scripts)\/[\w./-]*[\w-]\.(?:md|ts|yaml|sh|mjs|json))/g;
  const missing: string[] = [];
  for (const f of files) {
    for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(cited)) if (!existsSync(join(ROOT, m[1]!))) missing.push(`${f}: ${m[1]!}`);
  }
  assert.ok(files.length > 100, `read ${files.length} files`);
  assert.deepEqual(missing, []);
});
