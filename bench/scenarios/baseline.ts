/** The physical limit: 1 sender -> 3 receivers on one native Linux bridge, no overlay. */
import type { BenchContext } from '../lib/context.js';
import { measureDataPlane } from '../lib/context.js';
import { deleteNetns, nativeBridge } from '../lib/net.js';
import type { ResultRow } from '../lib/pure.js';

export const SIZES = [64, 1200] as const;

export async function baseline(ctx: BenchContext): Promise<{ rows: ResultRow[]; notes: string[] }> {
  const prefix = `${ctx.prefix}-nb`;
  try {
    const [sender, ...receivers] = await nativeBridge(prefix, 4);
    if (!sender) throw new Error('build native bridge: no members');
    const rows: ResultRow[] = [];
    for (const size of SIZES) {
      rows.push(await measureDataPlane(ctx, `native ${size}B`, { sender: sender.ns, receivers: receivers.map((r) => r.ns), size }));
    }
    return {
      rows,
      notes: [
        'iperf2 sends and receives (`iperf -u -c GROUP -T 1 -b Npps -l SIZE`, `iperf -s -u -B GROUP -w 4M`); sizes are UDP payload bytes',
        '"limit: sender" means even the unlimited trial lost < 0.1%: the sender process, not the bridge, set the ceiling',
      ],
    };
  } finally {
    await deleteNetns(prefix);
  }
}
