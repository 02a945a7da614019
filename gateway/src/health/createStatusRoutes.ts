import express, { type Router } from 'express';
import { createLiveness } from '../../../lib/http/createLiveness.ts';
import type { SubgraphBreakers } from '../subgraphs/createSubgraphBreakers.ts';
import type { Fetcher } from '../subgraphs/createSubgraphDataSource.ts';
import type { SubgraphEndpoint } from '../supergraph/createSupergraphManager.ts';
import { checkSubgraphs } from './checkSubgraphs.ts';

export interface StatusRoutesOptions {
  /** False until the gateway has started and once it stops. */
  isStarted: () => boolean;
  /** The subgraphs as the gateway routes to them now. */
  endpoints: () => SubgraphEndpoint[];
  /** Plain HTTP to the subgraphs: status probes go around the breakers, so they see recovery. */
  fetcher: Fetcher;
  timeoutMs: number;
  breakers: SubgraphBreakers;
}

/**
 * The gateway's operational endpoints: /health (liveness), /ready (every subgraph ready),
 * /services/status (each subgraph's URL, readiness, latency and breaker) and /circuit-breakers.
 * Formats in README.md, "Endpoints".
 */
export function createStatusRoutes(options: StatusRoutesOptions): { router: Router; close(): void } {
  const { isStarted, endpoints, fetcher, timeoutMs, breakers } = options;
  const liveness = createLiveness('gateway');
  const router = express.Router();
  const check = async () => (isStarted() ? checkSubgraphs(endpoints(), { fetcher, timeoutMs }) : []);

  router.get('/health', (_req, res) => {
    res.json(liveness.report());
  });
  router.get('/ready', async (_req, res) => {
    const subgraphs = (await check()).map(({ checks: _checks, ...status }) => status);
    const ready = isStarted() && subgraphs.length > 0 && subgraphs.every((s) => s.ready);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable', subgraphs });
  });
  router.get('/services/status', async (_req, res) => {
    const statuses = await check();
    const subgraphs = statuses.map((status) => ({ ...status, breaker: breakers.get(status.name).state }));
    const ok = isStarted() && subgraphs.every((s) => s.ready && s.breaker === 'closed');
    res.json({ status: ok ? 'ok' : 'degraded', checkedAt: new Date().toISOString(), subgraphs });
  });
  router.get('/circuit-breakers', (_req, res) => {
    res.json({ breakers: breakers.snapshots(endpoints().map((endpoint) => endpoint.name)) });
  });

  return { router, close: () => liveness.close() };
}
