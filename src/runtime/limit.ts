/**
 * Runs `fn` over `items` with at most `limit` calls in flight, and resolves when every call has
 * ended (rejecting with the first error, after the others ended). For bulk work that spawns a
 * process per item (re-reading 110 member namespaces): all at once, they queue on the CPU
 * before the one read an event is waiting for. Pure.
 */
export async function forEachLimit<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let failed: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    for (let next = it.next(); !next.done; next = it.next()) {
      try {
        await fn(next.value);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (failed) throw failed.err;
}
