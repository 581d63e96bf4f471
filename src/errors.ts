/**
 * All kmcast errors. Each has a stable `code` and the process exit code it maps to, so the CLI's
 * one top-level catch can print a clean message for user mistakes and keep stack traces for bugs.
 */

export const ExitCode = {
  ok: 0,
  failure: 1,
  badConfig: 2,
  missingCapability: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class KmcastError extends Error {
  readonly code: string = 'KMC_ERR';
  readonly exitCode: ExitCode = ExitCode.failure;
  /** Set on errors caused by the user (bad input, bad config): the CLI prints no stack for them. */
  readonly userError: boolean = false;
  readonly fields: Record<string, unknown>;

  constructor(message: string, options: { cause?: unknown; fields?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.fields = options.fields ?? {};
  }
}

/** Bad flag, env var, file or manifest: exit 2, message names the field. */
export class ConfigError extends KmcastError {
  override readonly code: string = 'KMC_ERR_CONFIG';
  override readonly exitCode = ExitCode.badConfig;
  override readonly userError = true;
}

/** Missing capability, kernel feature or tool: exit 3, message says how to fix it. */
export class CapabilityError extends KmcastError {
  override readonly code: string = 'KMC_ERR_CAPABILITY';
  override readonly exitCode = ExitCode.missingCapability;
  override readonly userError = true;
}

/** A named object does not exist (a link, a namespace, a pod). */
export class NotFoundError extends KmcastError {
  override readonly code: string = 'KMC_ERR_NOT_FOUND';
}

/** An external command exited non-zero. */
export class CommandError extends KmcastError {
  override readonly code: string = 'KMC_ERR_COMMAND';
  readonly argv: readonly string[];
  readonly exitStatus: number | null;
  readonly stderr: string;

  constructor(argv: readonly string[], exitStatus: number | null, stderr: string, signal?: string | null) {
    const how = exitStatus === null ? `signal ${signal ?? 'unknown'}` : `exit code ${exitStatus}`;
    super(`Command failed with ${how}: ${argv.join(' ')}${stderr.trim() ? `\n${stderr.trim()}` : ''}`, {
      fields: { argv, exitStatus },
    });
    this.argv = argv;
    this.exitStatus = exitStatus;
    this.stderr = stderr;
  }
}

/** A problem found in user input (YAML, JSON, group syntax) with a position when known. */
export class InputError extends ConfigError {
  override readonly code: string = 'KMC_ERR_INPUT';
}

export function isUserError(err: unknown): err is KmcastError {
  return err instanceof KmcastError && err.userError;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
