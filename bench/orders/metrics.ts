/**
 * The few figures the harness reads from the services' Prometheus endpoints: histogram sums and
 * counts, so a round's mean time per stage is (sum after − sum before) ÷ (count after − count before).
 */
export type Scrape = Map<string, number>;

export async function scrape(url: string): Promise<Scrape> {
  const text = await fetch(url).then((r) => r.text());
  const samples: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/**
 * The sum of every sample of `metric` whose labels include all of `labels`; a value ending in `*`
 * matches by prefix (the gateway names its fetch of `PlaceOrder` `PlaceOrder__orders__0`).
 */
function total(samples: Scrape, metric: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const [key, value] of samples) {
    const brace = key.indexOf('{');
    const name = brace < 0 ? key : key.slice(0, brace);
    if (name !== metric) continue;
    const matches = ([k, v]: [string, string]) =>
      key.includes(v.endsWith('*') ? `${k}="${v.slice(0, -1)}` : `${k}="${v}"`);
    if (Object.entries(labels).every(matches)) sum += value;
  }
  return sum;
}

/** Mean seconds of a histogram between two scrapes (NaN when nothing was observed). */
export function meanBetween(
  before: Scrape,
  after: Scrape,
  histogram: string,
  labels: Record<string, string> = {},
): { meanSeconds: number; count: number } {
  const count = total(after, `${histogram}_count`, labels) - total(before, `${histogram}_count`, labels);
  const sum = total(after, `${histogram}_sum`, labels) - total(before, `${histogram}_sum`, labels);
  return { meanSeconds: count > 0 ? sum / count : NaN, count };
}
