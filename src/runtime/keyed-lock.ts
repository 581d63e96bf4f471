/**
 * Serialises async sections by key: `run(key, fn)` starts `fn` once every section of the same
 * key that was started before it has ended; sections of other keys run meanwhile. The pass
 * queue's lanes use it for what two lanes share (a domain's device and entries, the gateway), so
 * a small pass waits for one step of a long pass, not for all of it. Pure.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key);
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before ? before.then(async () => await mine) : mine;
    this.tails.set(key, tail);
    try {
      if (before) await before;
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Whether a section of `key` runs or waits. */
  held(key: string): boolean {
    return this.tails.has(key);
  }
}
