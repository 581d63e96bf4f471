/**
 * Last-resort handlers: an unhandled promise rejection or uncaught exception is a bug, but it
 * must not end the agent silently or with a bare stack. It is logged as one JSON line (pino's
 * format: level 60 = fatal) on stderr, and the process exits with a code that says what it was:
 * a kmcast error keeps its own (2 configuration, 3 capability), anything else exits 70
 * (EX_SOFTWARE, "internal software error"), which a restart policy can tell from a clean exit.
 */
import { ExitCode, KmcastError } from '../errors.js';

export const EXIT_INTERNAL = 70;

function describe(err: unknown): { type: string; message: string; stack?: string } {
  if (err instanceof Error) return { type: err.name, message: err.message, stack: err.stack };
  return { type: typeof err, message: String(err) };
}

function fatal(kind: string, err: unknown): never {
  const code = err instanceof KmcastError && err.exitCode !== ExitCode.ok ? err.exitCode : EXIT_INTERNAL;
  const line = { level: 60, time: new Date().toISOString(), msg: `${kind} (a bug in kmcast); exiting with code ${code}`, err: describe(err) };
  try {
    process.stderr.write(`${JSON.stringify(line)}\n`);
  } finally {
    process.exit(code);
  }
}

let installed = false;

export function installCrashHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('unhandledRejection', (reason) => fatal('unhandled promise rejection', reason));
  process.on('uncaughtException', (err) => fatal('uncaught exception', err));
}
