/**
 * Builds the lab cluster's binaries (versions.ts) into the cache, once per key: a second run finds
 * the directory and returns at once. A build goes to a temporary directory renamed into place when
 * complete, so a killed build never leaves a directory that looks finished.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CapabilityError, CommandError } from '../../errors.js';
import { GO_MODULES, binDir, binaryName, buildKey, cacheDir, goBuildArgv, goBuildEnv, niced } from './versions.js';
import type { GoModuleName, GoModuleSpec, KubeBinary } from './versions.js';

/** lab/kube/ of the checkout (dist/src/lab/kube/build.js -> ../../../../lab/kube). */
export const GO_MODULES_ROOT = fileURLToPath(new URL('../../../../lab/kube/', import.meta.url));

export interface BuildOptions {
  readonly onProgress?: (msg: string) => void;
  readonly env?: NodeJS.ProcessEnv;
  /** Seconds between "still compiling" lines (default 30). */
  readonly progressEverySec?: number;
}

export interface BuiltModule {
  readonly name: GoModuleName;
  readonly dir: string;
  /** False when the cache already held it. */
  readonly built: boolean;
  readonly seconds: number;
}

export interface KubeBinaries {
  readonly cache: string;
  readonly modules: readonly BuiltModule[];
  /** Absolute path of each binary. */
  readonly paths: Readonly<Record<KubeBinary, string>>;
}

/** `go version` output, or a CapabilityError saying how to get Go. */
export function goVersion(env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync('go', ['version'], { encoding: 'utf8', env, timeout: 30_000 });
  if (r.error || r.status !== 0) {
    throw new CapabilityError(`run go version: ${r.error?.message ?? r.stderr.trim()}; the lab cluster is built from source: install Go 1.24 or newer and put it on PATH`);
  }
  return r.stdout.trim();
}

function moduleFiles(mod: GoModuleSpec): { goMod: string; goSum: string; dir: string } {
  const dir = join(GO_MODULES_ROOT, mod.dir);
  const goModPath = join(dir, 'go.mod');
  if (!existsSync(goModPath)) {
    throw new CapabilityError(`find ${goModPath}: the lab cluster is built from the Go modules under lab/kube/ of a kmcast checkout; run it from one`);
  }
  const goSumPath = join(dir, 'go.sum');
  return { dir, goMod: readFileSync(goModPath, 'utf8'), goSum: existsSync(goSumPath) ? readFileSync(goSumPath, 'utf8') : '' };
}

/** Runs one niced `go build -v`, reporting how many packages it compiled every `everySec`. */
async function runGoBuild(argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv, what: string, everySec: number, progress: (m: string) => void): Promise<void> {
  const full = niced(argv);
  const child = spawn(full[0] ?? 'nice', full.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let packages = 0;
  let tail = '';
  const started = Date.now();
  const onData = (b: Buffer): void => {
    const text = b.toString();
    packages += text.split('\n').filter((l) => /^[\w.-]+(\/[\w.@~+-]+)*$/.test(l.trim()) && l.trim() !== '').length;
    tail = (tail + text).slice(-4000);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setInterval(() => progress(`${what}: ${packages} packages compiled, ${Math.round((Date.now() - started) / 1000)} s`), everySec * 1000);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    if (code !== 0) throw new CommandError(full, code, tail.split('\n').slice(-30).join('\n'));
  } finally {
    clearInterval(timer);
  }
}

/** Each module's binaries from the cache, building what is missing. */
export async function ensureKubeBinaries(opts: BuildOptions = {}): Promise<KubeBinaries> {
  const env = opts.env ?? process.env;
  const progress = opts.onProgress ?? (() => undefined);
  const cache = cacheDir(env);
  const gov = goVersion(env);
  const buildEnv = goBuildEnv(cache, env);
  const modules: BuiltModule[] = [];
  const paths: Partial<Record<KubeBinary, string>> = {};
  for (const mod of GO_MODULES) {
    const files = moduleFiles(mod);
    const dir = binDir(cache, mod, buildKey(mod, files.goMod, files.goSum, gov));
    const started = Date.now();
    let built = false;
    if (existsSync(dir)) {
      progress(`${mod.name} ${mod.version}: cached in ${dir}`);
    } else {
      progress(`${mod.name} ${mod.version}: building (${gov.replace(/^go version /, '')}, nice 19, idle I/O) into ${dir}`);
      // Unique per build, also for two builds of one process: they must never share a directory.
      const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { recursive: true });
      try {
        await runGoBuild(goBuildArgv(mod, tmp), files.dir, buildEnv, `${mod.name} ${mod.version}`, opts.progressEverySec ?? 30, progress);
        // Another run may have finished the same key first: its directory is as good as ours.
        await rename(tmp, dir).catch(async (err: unknown) => {
          if (!existsSync(dir)) throw err;
          await rm(tmp, { recursive: true, force: true });
        });
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        throw err;
      }
      built = true;
      progress(`${mod.name} ${mod.version}: built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    for (const pkg of mod.packages) paths[binaryName(mod, pkg) as KubeBinary] = join(dir, binaryName(mod, pkg));
    modules.push({ name: mod.name, dir, built, seconds: (Date.now() - started) / 1000 });
  }
  return { cache, modules, paths: paths as Record<KubeBinary, string> };
}
