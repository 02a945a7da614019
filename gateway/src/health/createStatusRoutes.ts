import express, { type Router } from 'express';
import { runChecks } from '../../../lib/http/createHealthRoutes.ts';
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
  /**
   * What the gateway uses besides the subgraphs, by name (`redis` with REDIS_URL). It can serve
   * without them, less well (rate limits per replica instead of shared): one that fails makes
   * the gateway `degraded`, never unready. Taking every replica out of the load balancer because
   * their shared Redis is away would turn a weaker rate limit into an outage.
   */
  dependencies?: Record<string, () => Promise<unknown>>;
}

/**
 * The gateway's operational endpoints: /health (liveness), /ready (every subgraph ready; its own
 * dependencies reported), /services/status (each subgraph's URL, readiness, latency and breaker,
 * and the dependencies) and /circuit-breakers. Formats in README.md, "Endpoints".
 */
export function createStatusRoutes(options: StatusRoutesOptions): { router: Router; close(): void } {
  const { isStarted, endpoints, fetcher, timeoutMs, breakers, dependencies = {} } = options;
  const liveness = createLiveness('gateway');
  const router = express.Router();
  const check = async () => (isStarted() ? checkSubgraphs(endpoints(), { fetcher, timeoutMs }) : []);
  const hasDependencies = Object.keys(dependencies).length > 0;
  const checkDependencies = async () => (hasDependencies ? runChecks(dependencies, timeoutMs) : undefined);

  router.get('/health', (_req, res) => {
    res.json(liveness.report());
  });
  router.get('/ready', async (_req, res) => {
    const [statuses, checks] = await Promise.all([check(), checkDependencies()]);
    const subgraphs = statuses.map(({ checks: _checks, ...status }) => status);
    const ready = isStarted() && subgraphs.length > 0 && subgraphs.every((s) => s.ready);
    const degraded = Object.values(checks ?? {}).some((c) => !c.ok);
    res.status(ready ? 200 : 503).json({
      status: ready ? (degraded ? 'degraded' : 'ready') : 'unavailable',
      subgraphs,
      ...(checks && { checks }),
    });
  });
  router.get('/services/status', async (_req, res) => {
    const [statuses, checks] = await Promise.all([check(), checkDependencies()]);
    const subgraphs = statuses.map((status) => ({ ...status, breaker: breakers.get(status.name).state }));
    const ok =
      isStarted() &&
      subgraphs.every((s) => s.ready && s.breaker === 'closed') &&
      Object.values(checks ?? {}).every((c) => c.ok);
    res.json({
      status: ok ? 'ok' : 'degraded',
      checkedAt: new Date().toISOString(),
      subgraphs,
      ...(checks && { checks }),
    });
  });
  router.get('/circuit-breakers', (_req, res) => {
    res.json({ breakers: breakers.snapshots(endpoints().map((endpoint) => endpoint.name)) });
  });

  return { router, close: () => liveness.close() };
}
