/**
 * The container images of the lab cluster, built locally (no registry is reachable from the lab)
 * into the cache as docker-archive tarballs that `ctr images import` reads, keyed by what goes in:
 *   pause    the sandbox image: the pause binary built from lab/kube/pause
 *   coredns  the cluster DNS: the coredns binary built from lab/kube/coredns
 *   apps   Debian bookworm with python3, iperf, socat, keepalived, avahi, iproute2, tcpdump
 *          (mmdebstrap from this machine's own apt sources)
 * Each is built in a temporary directory and renamed into place when complete.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CapabilityError } from '../../errors.js';
import type { Runner } from '../../kernel/runner.js';
import { APPS_IMAGE, PAUSE_IMAGE, corednsImage } from './plan.js';
import { COREDNS_VERSION, niced } from './versions.js';

export const APPS_PACKAGES = ['python3', 'iperf', 'socat', 'keepalived', 'avahi-daemon', 'iproute2', 'procps', 'tcpdump'] as const;
export const APPS_SUITE = 'bookworm';
/** Bump when a recipe below changes in a way its inputs do not show. */
const RECIPE_VERSION = '1';
const IMAGE_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface LabImages {
  readonly pause: string;
  readonly apps: string;
  readonly coredns: string;
}

/** This machine's apt sources (deb822 files first): the apps image installs from the same mirrors. */
export function aptSources(): string[] {
  const dir = '/etc/apt/sources.list.d';
  const files: string[] = [];
  try {
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.sources') || f.endsWith('.list')) files.push(join(dir, f));
  } catch {
    // no such dir
  }
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  return files.filter((f) => readFileSync(f, 'utf8').split('\n').some((l) => new RegExp(`^(Suites:.*\\b|deb .* )${APPS_SUITE}(\\s|$)`).test(l)));
}

function hash(parts: readonly (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(p);
    h.update('\0');
  }
  return h.digest('hex').slice(0, 12);
}

/** umoci: an OCI layout with one layer and a config, then skopeo to a named docker-archive. */
function ociCommands(work: string, layer: string, config: readonly string[], name: string, out: string): string[][] {
  const img = `${join(work, 'oci')}:img`;
  return [
    ['umoci', 'init', '--layout', join(work, 'oci')],
    ['umoci', 'new', '--image', img],
    ['umoci', 'raw', 'add-layer', '--image', img, layer],
    ['umoci', 'config', '--image', img, '--author', 'kmcast-lab', '--config.env', IMAGE_PATH, '--config.workingdir', '/', ...config],
    ['skopeo', 'copy', '--quiet', `oci:${img}`, `docker-archive:${out}:${name}`],
  ];
}

async function buildInto(target: string, build: (work: string, out: string) => Promise<void>): Promise<void> {
  const work = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const out = join(work, 'image.tar');
    await build(work, out);
    await rename(out, target);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function requireTools(): void {
  for (const t of ['umoci', 'skopeo', 'mmdebstrap']) {
    if (!(process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => d !== '' && existsSync(join(d, t)))) {
      throw new CapabilityError(`find ${t}: the lab cluster builds its images with umoci, skopeo and mmdebstrap: run .ci/install-deps --kube`);
    }
  }
}

/** The images in the cache, building what is missing; `bins` are the built pause and coredns programs. */
export async function ensureImages(runner: Runner, cache: string, bins: { readonly pause: string; readonly coredns: string }, progress: (m: string) => void): Promise<LabImages> {
  requireTools();
  const dir = join(cache, 'images');
  await mkdir(dir, { recursive: true });
  const run = async (argv: readonly string[], timeoutMs = 120_000): Promise<void> => {
    await runner.run(argv, { timeoutMs });
  };

  // One static binary as the whole image (the sandbox, CoreDNS).
  const binaryImage = async (file: string, name: string, binary: string, entrypoint: readonly string[]): Promise<string> => {
    const target = join(dir, `${file}-${hash([RECIPE_VERSION, name, entrypoint.join(' '), readFileSync(binary)])}.tar`);
    if (existsSync(target)) {
      progress(`image ${name}: cached`);
      return target;
    }
    const t = Date.now();
    await buildInto(target, async (work, out) => {
      const rootfs = join(work, 'rootfs');
      await mkdir(rootfs);
      const inImage = join(rootfs, (entrypoint[0] ?? '/bin').replace(/^\//, ''));
      await copyFile(binary, inImage);
      await chmod(inImage, 0o755);
      await run(['tar', '-C', rootfs, '--owner=0', '--group=0', '-cf', join(work, 'layer.tar'), '.']);
      const config = entrypoint.flatMap((a) => ['--config.entrypoint', a]);
      for (const argv of ociCommands(work, join(work, 'layer.tar'), config, name, out)) await run(argv);
    });
    progress(`image ${name}: built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    return target;
  };
  const pause = await binaryImage('pause-1', PAUSE_IMAGE, bins.pause, ['/pause']);
  const coredns = await binaryImage(`coredns-${COREDNS_VERSION}`, corednsImage(COREDNS_VERSION), bins.coredns, ['/coredns']);

  const sources = aptSources();
  if (sources.length === 0) throw new CapabilityError(`build image ${APPS_IMAGE}: found no apt source for Debian ${APPS_SUITE} in /etc/apt`);
  const apps = join(dir, `apps-1-${hash([RECIPE_VERSION, APPS_IMAGE, APPS_SUITE, APPS_PACKAGES.join(','), ...sources.map((f) => readFileSync(f, 'utf8'))])}.tar`);
  if (existsSync(apps)) progress(`image ${APPS_IMAGE}: cached`);
  else {
    const t = Date.now();
    progress(`image ${APPS_IMAGE}: mmdebstrap ${APPS_SUITE} with ${APPS_PACKAGES.join(' ')} (a few minutes)`);
    await buildInto(apps, async (work, out) => {
      const layer = join(work, 'rootfs.tar');
      await run(
        niced([
          'mmdebstrap', '--quiet', '--variant=apt', `--include=${APPS_PACKAGES.join(',')}`,
          '--dpkgopt=path-exclude=/usr/share/doc/*', '--dpkgopt=path-exclude=/usr/share/man/*', '--dpkgopt=path-exclude=/usr/share/locale/*',
          // Snapshot mirrors serve Release files past their Valid-Until.
          '--aptopt=Acquire::Check-Valid-Until "false"',
          APPS_SUITE, layer, ...sources,
        ]),
        1_800_000,
      );
      for (const argv of ociCommands(work, layer, ['--config.cmd', 'sleep', '--config.cmd', 'infinity'], APPS_IMAGE, out)) await run(argv);
    });
    progress(`image ${APPS_IMAGE}: built in ${((Date.now() - t) / 1000).toFixed(0)} s`);
  }
  return { pause, apps, coredns };
}
