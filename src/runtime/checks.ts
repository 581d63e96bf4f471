/** One result of `kmcast doctor` (pod, node or gateway checks alike). */

export type CheckStatus = 'OK' | 'WARN' | 'FAIL' | 'SKIP';

export interface CheckResult {
  /** Stable id, for scripts reading `--json`. */
  readonly id: string;
  readonly title: string;
  /** SKIP: not applicable with the given flags (e.g. no --service); never fails the run. */
  readonly status: CheckStatus;
  readonly detail: string;
  /** What to do about a WARN or FAIL. */
  readonly fix?: string;
}
