/**
 * The running part of `kmcast agent` and `kmcast node`: wait for SIGTERM or SIGINT, then stop the
 * agent (LEAVE, and whatever its stop keeps or removes); a failed stop exits 1.
 */
import type { Logger } from '../log.js';

export async function runUntilSignal(agent: { stop(): Promise<void> }, log: Logger): Promise<void> {
  await new Promise<void>((resolve) => {
    const shutdown = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'shutting down');
      agent.stop().then(resolve, (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exitCode = 1;
        resolve();
      });
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}
