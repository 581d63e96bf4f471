/** Shared fixtures for the membership tests (no test cases here). */
import { Encoder } from '../../../src/membership/codec.js';
import type { ControlMessage, DecodeResult } from '../../../src/membership/codec.js';

export const CLUSTER = '4242/mcast-app.default.svc.cluster.local';
export const KEY1 = Buffer.from('0123456789abcdef0123456789abcdef', 'utf8');
export const KEY2 = Buffer.from('fedcba9876543210fedcba9876543210', 'utf8');
export const WRONG_KEY = Buffer.from('not-the-cluster-key-not-the-key!', 'utf8');
/** A fixed "now" for pure tests: 2026-01-01T00:00:00Z. */
export const T0 = Date.UTC(2026, 0, 1);

export const MAC_A = '02:00:0a:00:00:01';
export const MAC_B = '02:00:0a:00:00:02';

/** `count` distinct routable groups 239.1.x.y. */
export function groups(count: number, offset = 0): string[] {
  return Array.from({ length: count }, (_, i) => `239.1.${Math.floor((i + offset) / 250)}.${((i + offset) % 250) + 1}`);
}

/** `key` null = unsigned (undefined would pick the default key). */
export function encoder(sender: string, key: Buffer | null = KEY1, incarnation?: string): Encoder {
  return new Encoder({ sender, cluster: CLUSTER, key: key ?? undefined, incarnation });
}

export function ok(result: DecodeResult): ControlMessage {
  if (!result.ok) throw new Error(`expected a decoded message, got ${result.reason}`);
  return result.msg;
}

/** Deterministic PRNG (mulberry32): the fuzz corpus is the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
