/**
 * Shared helpers for the privileged tests. Each test file builds its own lab (unique id), tears it
 * down in `after`, and skips with a printed reason when not root — unless KMCAST_REQUIRE_NETNS=1
 * (set by scripts/test.mjs for root CI runs), where a skip would hide a broken data plane.
 */
import type { TestContext } from 'node:test';
import { randomBytes } from 'node:crypto';

export function privilegedReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  return undefined;
}

/** Returns true when the test may run; otherwise skips it (or fails under CI). */
export function needRoot(t: TestContext): boolean {
  const reason = privilegedReason();
  if (!reason) return true;
  if (process.env.KMCAST_REQUIRE_NETNS === '1') throw new Error(`privileged test cannot run: ${reason}`);
  t.skip(reason);
  return false;
}

/** A short random lab id, so parallel test files never share a namespace name. */
export function testLabId(prefix = 't'): string {
  return `${prefix}${randomBytes(2).toString('hex')}`;
}

/** KMCAST_KEEP_LAB=1 leaves a test's lab (namespaces, agents, logs) for a post-mortem; `kmcast lab down --id ID` removes it. */
export function keepLab(): boolean {
  return process.env.KMCAST_KEEP_LAB === '1';
}
