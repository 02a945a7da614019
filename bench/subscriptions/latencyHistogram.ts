/** Resolution of the latency histogram: 0.1 ms. */
const STEPS_PER_MS = 10;

/** [bucket, count] pairs: what a client process sends back instead of millions of samples. */
export type HistogramEntries = [number, number][];

/**
 * Latencies (ms, possibly negative: an update can reach a client before placeOrder's response
 * reaches the driver) counted in 0.1 ms buckets, so client processes can be merged exactly.
 */
export function createLatencyHistogram(entries: HistogramEntries = []) {
  const counts = new Map<number, number>(entries);
  let total = entries.reduce((n, [, c]) => n + c, 0);
  return {
    record(ms: number): void {
      const bucket = Math.round(ms * STEPS_PER_MS);
      counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
      total += 1;
    },
    merge(other: HistogramEntries): void {
      for (const [bucket, count] of other) counts.set(bucket, (counts.get(bucket) ?? 0) + count);
      total += other.reduce((n, [, c]) => n + c, 0);
    },
    get count() {
      return total;
    },
    /** The nearest-rank percentile, in ms (NaN when empty). */
    percentile(p: number): number {
      if (total === 0) return NaN;
      const rank = Math.max(1, Math.ceil((p / 100) * total));
      let seen = 0;
      for (const bucket of [...counts.keys()].sort((a, b) => a - b)) {
        seen += counts.get(bucket)!;
        if (seen >= rank) return bucket / STEPS_PER_MS;
      }
      return NaN;
    },
    entries: (): HistogramEntries => [...counts],
  };
}
