/**
 * The capabilities an agent holds, read from /proc/self/status (CapEff). The parsing is pure;
 * every agent and `kmcast doctor` read them through here.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** Linux capability bits (include/uapi/linux/capability.h). */
export const CAP_NET_BROADCAST = 11;
export const CAP_NET_ADMIN = 12;

/** CapEff from /proc/self/status (hex) has `bit` set. */
export function hasCapability(capEffHex: string, bit: number): boolean {
  return ((BigInt(`0x${capEffHex.trim() || '0'}`) >> BigInt(bit)) & 1n) === 1n;
}

export function capEffOf(procStatus: string): string {
  return /^CapEff:\s*([0-9a-fA-F]+)/m.exec(procStatus)?.[1] ?? '0';
}

export async function hasNetAdmin(): Promise<boolean> {
  return hasCapability(capEffOf(await readFile('/proc/self/status', 'utf8')), CAP_NET_ADMIN);
}

/** Whether this process holds `bit` now (false when /proc cannot be read). */
export function holdsCapability(bit: number): boolean {
  try {
    return hasCapability(capEffOf(readFileSync('/proc/self/status', 'utf8')), bit);
  } catch {
    return false;
  }
}
