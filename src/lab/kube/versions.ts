/**
 * What the lab cluster is built from and where the builds are cached. Pure: the keys, the
 * directory names and the `go build` argv lists; build.ts runs them.
 *
 * Every binary is built from the Go modules under lab/kube/ of the checkout (one per upstream
 * project, so their dependency graphs never mix) into
 *   <cache>/bin/<name>-<version>-<key>/
 * where <key> hashes the module's go.mod and go.sum, the Go toolchain version and the build flags:
 * any change gives a new directory and a cache hit is a directory that exists. Go's own compile
 * cache (<cache>/go-build) makes a rebuild after a flag change cost the link only.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';

export const KUBE_VERSION = 'v1.34.4';
export const ETCD_VERSION = 'v3.6.17';
export const COREDNS_VERSION = 'v1.12.4';
/** The environment variable that moves the cache (default DEFAULT_CACHE_DIR). */
export const CACHE_ENV = 'KMCAST_LAB_CACHE';
export const DEFAULT_CACHE_DIR = '/var/cache/kmcast-lab';

export type GoModuleName = 'kubernetes' | 'etcd' | 'coredns' | 'pause';

export interface GoModuleSpec {
  readonly name: GoModuleName;
  /** The module's directory under lab/kube/. */
  readonly dir: string;
  readonly version: string;
  /** Package paths to build, each becoming the binary named after its last element. */
  readonly packages: readonly string[];
  readonly ldflags: string;
}

export const KUBE_BINARIES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy'] as const;
export type KubeBinary = (typeof KUBE_BINARIES)[number] | 'etcd' | 'coredns' | 'pause';

/** The version every Kubernetes binary reports (kubectl version, a node's kubeletVersion). */
export function kubeVersionLdflags(version: string): string {
  const m = /^v(\d+)\.(\d+)\.\d+$/.exec(version);
  if (!m) throw new TypeError(`kube version ${version}: expected vMAJOR.MINOR.PATCH`);
  const vars: Array<[string, string]> = [
    ['gitVersion', version],
    ['gitMajor', m[1] ?? ''],
    ['gitMinor', m[2] ?? ''],
    ['gitTreeState', 'clean'],
  ];
  const x = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((pkg) => vars.map(([k, v]) => `-X ${pkg}.${k}=${v}`));
  return ['-s', '-w', ...x].join(' ');
}

export const GO_MODULES: readonly GoModuleSpec[] = [
  {
    name: 'kubernetes',
    dir: 'k8s',
    version: KUBE_VERSION,
    packages: KUBE_BINARIES.map((b) => `k8s.io/kubernetes/cmd/${b}`),
    ldflags: kubeVersionLdflags(KUBE_VERSION),
  },
  { name: 'etcd', dir: 'etcd', version: ETCD_VERSION, packages: ['.'], ldflags: '-s -w' },
  { name: 'coredns', dir: 'coredns', version: COREDNS_VERSION, packages: ['github.com/coredns/coredns'], ldflags: '-s -w' },
  { name: 'pause', dir: 'pause', version: '1', packages: ['.'], ldflags: '-s -w' },
];

/** The cache root: $KMCAST_LAB_CACHE or DEFAULT_CACHE_DIR; it must be absolute. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const v = env[CACHE_ENV];
  if (v === undefined || v === '') return DEFAULT_CACHE_DIR;
  if (!v.startsWith('/')) throw new TypeError(`${CACHE_ENV}=${v}: must be an absolute path`);
  return v.replace(/\/+$/, '') || '/';
}

/** The environment of every build: static binaries, no paths of this machine inside, our compile cache. */
export function goBuildEnv(cache: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...base, CGO_ENABLED: '0', GOFLAGS: '-trimpath -buildvcs=false', GOCACHE: join(cache, 'go-build') };
}

/** The part of the key that is not the module's files: toolchain and flags. */
export function buildKey(mod: GoModuleSpec, goMod: string, goSum: string, goVersion: string): string {
  const h = createHash('sha256');
  for (const part of [mod.name, mod.version, goMod, goSum, goVersion.trim(), mod.ldflags, mod.packages.join(' '), 'CGO_ENABLED=0 -trimpath']) {
    h.update(part);
    h.update('\0');
  }
  return h.digest('hex').slice(0, 12);
}

export const binDir = (cache: string, mod: GoModuleSpec, key: string): string => join(cache, 'bin', `${mod.name}-${mod.version}-${key}`);

/** The binary a package path builds: its last element, or the module's name for '.'. */
export function binaryName(mod: GoModuleSpec, pkg: string): string {
  return pkg === '.' ? mod.name : (pkg.split('/').pop() ?? pkg);
}

/**
 * `go build` of the whole module into `outDir` (a directory: `-o dir/` names each binary after
 * its package). `-v` prints each package as it is compiled: build.ts counts them for progress.
 */
export function goBuildArgv(mod: GoModuleSpec, outDir: string): string[] {
  const out = mod.packages.length === 1 ? join(outDir, binaryName(mod, mod.packages[0] ?? '.')) : `${outDir}/`;
  return ['go', 'build', '-v', '-ldflags', mod.ldflags, '-o', out, ...mod.packages];
}

/** Runs a compile with idle CPU and idle I/O only: the lab builds on machines shared with timing-sensitive tests. */
export function niced(argv: readonly string[]): string[] {
  return ['nice', '-n', '19', 'ionice', '-c3', ...argv];
}
