/**
 * How the agent's Node.js runtime is started, in the image (deploy/Dockerfile) and in the lab.
 * Measured by `npm run bench -- --scenario resources` (docs/performance.md): together these keep
 * the agent's peak RSS under 60 MB (about 66 MB without them) at the same CPU. NODE_OPTIONS
 * refuses --optimize-for-size, so they go on the command line.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--v8-pool-size=1', '--optimize-for-size'];

/** glibc malloc arenas: the default (8 per core) holds freed memory a small daemon never reuses. */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
