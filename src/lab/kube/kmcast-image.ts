/**
 * The kmcast image (`kmcast/kmcast:<version>`, what deploy/ references), built without a container
 * engine with deploy/Dockerfile's runtime layout: Debian bookworm with iproute2 from
 * bookworm-backports (the apt source derived by deploy/bookworm-backports.sh) and nftables; Node.js
 * 20 (this machine's, whose libraries the base carries); /app with package.json, the production
 * node_modules and dist/src of this checkout; the `kmcast` command on PATH (deploy/kmcast, which
 * the Dockerfile copies the same way: a unit test keeps them together); ENTRYPOINT, CMD, WORKDIR
 * and ENV read from the Dockerfile's final stage, so the two cannot drift apart.
 *
 * Two cache entries: the Debian base (keyed by packages and apt sources; minutes to build) and
 * the image (keyed by the base, Node.js and every file of the app; seconds), so a changed
 * checkout costs seconds.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, rename, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CapabilityError } from '../../errors.js';
import type { Runner } from '../../kernel/runner.js';
import { VERSION } from '../../version.js';
import { aptSources } from './images.js';
import { niced } from './versions.js';

export const KMCAST_IMAGE = `kmcast/kmcast:${VERSION}`;
/** The `kmcast` command on PATH: the Dockerfile's `COPY <src> <dest>`, rebuilt the same way here. */
export const KMCAST_WRAPPER = { src: 'deploy/kmcast', dest: '/usr/local/bin/kmcast' } as const;
export const KMCAST_BASE_PACKAGES = ['iproute2/bookworm-backports', 'nftables', 'libstdc++6', 'ca-certificates'] as const;
const RECIPE_VERSION = '1';

/**
 * Paths under dist/src the image does not carry: the test rig (`kmcast lab`, `kmcast demo`). The
 * Dockerfile's build stage removes the same (a unit test compares the two).
 */
export const IMAGE_EXCLUDES: readonly string[] = ['lab', 'cli/lab.js', 'cli/lab.js.map', 'cli/lab.d.ts', 'cli/demo.js', 'cli/demo.js.map', 'cli/demo.d.ts'];

/** Whether `rel` (a path relative to dist/src) is left out of the image. Pure. */
export function isImageExcluded(rel: string): boolean {
  const p = rel.split(sep).join('/');
  return IMAGE_EXCLUDES.some((x) => p === x || p.startsWith(`${x}/`));
}

/** The checkout's root and the dist/src this code runs from. */
const DIST_SRC = fileURLToPath(new URL('../../', import.meta.url));
const CHECKOUT = fileURLToPath(new URL('../../../../', import.meta.url));

export interface DockerfileRuntime {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly workdir: string;
  readonly env: readonly string[];
}

/** ENTRYPOINT, CMD (exec form), WORKDIR and ENV of a Dockerfile's final stage. Pure; exported for tests. */
export function parseDockerfileRuntime(text: string): DockerfileRuntime {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const lastFrom = lines.map((l) => /^FROM\s/i.test(l.trim())).lastIndexOf(true);
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  let workdir = '/';
  const env: string[] = [];
  for (const raw of lines.slice(lastFrom + 1)) {
    const l = raw.trim();
    const m = /^(ENTRYPOINT|CMD|WORKDIR|ENV)\s+(.*)$/i.exec(l);
    if (!m) continue;
    const [, kw = '', rest = ''] = m;
    switch (kw.toUpperCase()) {
      case 'ENTRYPOINT':
        entrypoint = JSON.parse(rest) as string[];
        break;
      case 'CMD':
        cmd = JSON.parse(rest) as string[];
        break;
      case 'WORKDIR':
        workdir = rest.trim();
        break;
      default:
        for (const kv of rest.trim().split(/\s+/)) if (kv.includes('=')) env.push(kv);
    }
  }
  if (entrypoint.length === 0) throw new TypeError('Dockerfile: the final stage has no ENTRYPOINT in exec form');
  return { entrypoint, cmd, workdir, env };
}

function hashFiles(h: ReturnType<typeof createHash>, dir: string, rel = ''): void {
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(rel, e.name);
    if (e.isDirectory()) hashFiles(h, dir, p);
    else if (e.isFile()) {
      h.update(p);
      h.update('\0');
      h.update(readFileSync(join(dir, p)));
      h.update('\0');
    }
  }
}

const short = (h: ReturnType<typeof createHash>): string => h.digest('hex').slice(0, 12);

/** The kmcast image in the cache as a docker-archive, building what is missing. */
export async function ensureKmcastImage(runner: Runner, cache: string, progress: (m: string) => void): Promise<string> {
  const dockerfile = join(CHECKOUT, 'deploy', 'Dockerfile');
  const backports = join(CHECKOUT, 'deploy', 'bookworm-backports.sh');
  if (!existsSync(dockerfile) || !existsSync(join(CHECKOUT, 'package-lock.json'))) {
    throw new CapabilityError(`find ${dockerfile}: the kmcast image is built from a kmcast checkout; run from one`);
  }
  const runtime = parseDockerfileRuntime(readFileSync(dockerfile, 'utf8'));
  const node = process.execPath;
  const dir = join(cache, 'images');
  await mkdir(dir, { recursive: true });
  const run = async (argv: readonly string[], timeoutMs = 120_000, cwd?: string): Promise<void> => {
    await runner.run(cwd ? ['env', '-C', cwd, ...argv] : argv, { timeoutMs });
  };

  // The Debian base.
  const sources = aptSources();
  const debianSources = sources.find((f) => f.endsWith('.sources'));
  if (!debianSources) throw new CapabilityError('build the kmcast image: found no deb822 apt source for Debian bookworm in /etc/apt/sources.list.d');
  const bh = createHash('sha256');
  for (const part of [RECIPE_VERSION, KMCAST_BASE_PACKAGES.join(','), readFileSync(debianSources, 'utf8'), readFileSync(backports, 'utf8')]) bh.update(`${part}\0`);
  const base = join(dir, `kmcast-base-${short(bh)}.rootfs.tar`);
  if (existsSync(base)) progress('kmcast image base: cached');
  else {
    const t = Date.now();
    progress(`kmcast image base: mmdebstrap bookworm with ${KMCAST_BASE_PACKAGES.join(' ')} (a few minutes)`);
    const work = `${base}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    try {
      const bp = join(work, 'bookworm-backports.sources');
      await run(['sh', backports, debianSources, bp]);
      await run(
        niced([
          'mmdebstrap', '--quiet', '--variant=apt', `--include=${KMCAST_BASE_PACKAGES.join(',')}`,
          '--dpkgopt=path-exclude=/usr/share/doc/*', '--dpkgopt=path-exclude=/usr/share/man/*', '--dpkgopt=path-exclude=/usr/share/locale/*',
          '--aptopt=Acquire::Check-Valid-Until "false"',
          'bookworm', join(work, 'rootfs.tar'), debianSources, bp,
        ]),
        1_800_000,
      );
      await rename(join(work, 'rootfs.tar'), base);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    progress(`kmcast image base: built in ${((Date.now() - t) / 1000).toFixed(0)} s`);
  }

  // The image: base + Node.js + /app.
  const ih = createHash('sha256');
  for (const part of [RECIPE_VERSION, base, JSON.stringify(runtime), readFileSync(join(CHECKOUT, 'package.json'), 'utf8'), readFileSync(join(CHECKOUT, 'package-lock.json'), 'utf8')]) ih.update(`${part}\0`);
  ih.update(readFileSync(node));
  ih.update(readFileSync(join(CHECKOUT, KMCAST_WRAPPER.src)));
  hashFiles(ih, DIST_SRC);
  const target = join(dir, `kmcast-${VERSION}-${short(ih)}.tar`);
  if (existsSync(target)) {
    progress(`image ${KMCAST_IMAGE}: cached`);
    return target;
  }
  const t = Date.now();
  const work = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await rm(work, { recursive: true, force: true });
  const layer = join(work, 'layer');
  const app = join(layer, runtime.workdir.replace(/^\//, ''));
  await mkdir(join(layer, 'usr', 'local', 'bin'), { recursive: true });
  await mkdir(app, { recursive: true });
  try {
    await copyFile(node, join(layer, 'usr', 'local', 'bin', 'node'));
    await chmod(join(layer, 'usr', 'local', 'bin', 'node'), 0o755);
    const wrapper = join(layer, KMCAST_WRAPPER.dest.replace(/^\//, ''));
    await copyFile(join(CHECKOUT, KMCAST_WRAPPER.src), wrapper);
    await chmod(wrapper, 0o755);
    for (const f of ['package.json', 'package-lock.json']) await copyFile(join(CHECKOUT, f), join(app, f));
    await cp(join(CHECKOUT, 'node_modules'), join(app, 'node_modules'), { recursive: true, verbatimSymlinks: true });
    // The production dependencies only, from the lock file, without the network.
    await run(['npm', 'prune', '--omit=dev', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], 300_000, app);
    await rm(join(app, 'package-lock.json'));
    // What the Dockerfile leaves out too (IMAGE_EXCLUDES): the lab and the demo are not shipped.
    await cp(DIST_SRC, join(app, 'dist', 'src'), { recursive: true, filter: (p) => !isImageExcluded(relative(DIST_SRC, p)) });
    await run(['tar', '-C', layer, '--owner=0', '--group=0', '-cf', join(work, 'app.tar'), '.']);
    const img = `${join(work, 'oci')}:img`;
    const config = [
      ...runtime.entrypoint.flatMap((a) => ['--config.entrypoint', a]),
      ...runtime.cmd.flatMap((a) => ['--config.cmd', a]),
      ...[...runtime.env, 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'].flatMap((e) => ['--config.env', e]),
      '--config.workingdir', runtime.workdir,
    ];
    for (const argv of [
      ['umoci', 'init', '--layout', join(work, 'oci')],
      ['umoci', 'new', '--image', img],
      ['umoci', 'raw', 'add-layer', '--image', img, base],
      ['umoci', 'raw', 'add-layer', '--image', img, join(work, 'app.tar')],
      ['umoci', 'config', '--image', img, '--author', 'kmcast-lab', ...config],
      ['skopeo', 'copy', '--quiet', `oci:${img}`, `docker-archive:${join(work, 'image.tar')}:${KMCAST_IMAGE}`],
    ]) {
      await run(argv, 300_000);
    }
    await rename(join(work, 'image.tar'), target);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  progress(`image ${KMCAST_IMAGE}: built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return target;
}
