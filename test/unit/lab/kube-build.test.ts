/** ensureKubeBinaries against a stand-in `go` (no compile): cache hits, and two runs racing for one key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureKubeBinaries } from '../../../src/lab/kube/build.js';

// `go version`, and `go build ... -o OUT PKG...`: OUT/ gets one file per package, else OUT itself; slow enough to overlap.
const FAKE_GO = `#!/bin/sh
if [ "$1" = version ]; then echo "go version go0.0-fake linux/amd64"; exit 0; fi
out=""; prev=""; pkgs=""
for a in "$@"; do
  if [ "$prev" = "-o" ]; then out="$a"; fi
  case "$a" in k8s.io/*|github.com/*|.) pkgs="$pkgs $a";; esac
  prev="$a"
done
sleep 0.3
case "$out" in
  */) for p in $pkgs; do echo "$p"; echo bin > "$out\${p##*/}"; done;;
  *) echo bin > "$out";;
esac
`;

function fakeEnv(): { env: NodeJS.ProcessEnv; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kmc-build-'));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'go'), FAKE_GO);
  chmodSync(join(dir, 'bin', 'go'), 0o755);
  return { dir, env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}`, KMCAST_LAB_CACHE: join(dir, 'cache') } };
}

test('ensureKubeBinaries builds each module once, then finds it in the cache', async () => {
  const { dir, env } = fakeEnv();
  try {
    const first = await ensureKubeBinaries({ env });
    assert.ok(first.modules.every((m) => m.built));
    assert.ok(existsSync(first.paths.kubelet) && existsSync(first.paths.etcd) && existsSync(first.paths.pause));
    const second = await ensureKubeBinaries({ env });
    assert.ok(second.modules.every((m) => !m.built));
    assert.deepEqual(second.paths, first.paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two runs building the same key at once both succeed, leaving one finished directory and no temporary one', async () => {
  const { dir, env } = fakeEnv();
  try {
    const [a, b] = await Promise.all([ensureKubeBinaries({ env }), ensureKubeBinaries({ env })]);
    assert.deepEqual(a.paths, b.paths);
    const entries = readdirSync(join(dir, 'cache', 'bin'));
    assert.deepEqual(entries.filter((e) => e.includes('.tmp-')), []);
    assert.equal(entries.length, a.modules.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
