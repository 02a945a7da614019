import express, { type Router } from 'express';
import { createLiveness } from './createLiveness.ts';

export interface ReadinessCheck {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

export interface HealthRoutesOptions {
  service: string;
  /** False before the service has started and once it stops: /ready then answers 503. */
  isStarted: () => boolean;
  /** The dependencies /ready asks, by name (`database`, `eventStream`, `workQueue`). */
  checks: Record<string, () => Promise<unknown>>;
  /** Longest wait for one check before calling it failed. */
  timeoutMs?: number;
}

/**
 * GET /health (liveness: createLiveness) and GET /ready (readiness: every dependency check at
 * once, each with a deadline; 200 when all pass and the service has started, else 503).
 */
export function createHealthRoutes({ service, isStarted, checks, timeoutMs = 2_000 }: HealthRoutesOptions): {
  router: Router;
  close(): void;
} {
  const liveness = createLiveness(service);
  const router = express.Router();

  router.get('/health', (_req, res) => {
    res.json(liveness.report());
  });
  router.get('/ready', async (_req, res) => {
    const results = await runChecks(checks, timeoutMs);
    const ready = isStarted() && Object.values(results).every((result) => result.ok);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable', service, checks: results });
  });

  return { router, close: () => liveness.close() };
}

/** Runs every check at once, each with a deadline of `timeoutMs`; a check that throws is not ok. */
export async function runChecks(
  checks: Record<string, () => Promise<unknown>>,
  timeoutMs: number,
): Promise<Record<string, ReadinessCheck>> {
  return Object.fromEntries(
    await Promise.all(
      Object.entries(checks).map(async ([name, check]) => [name, await runCheck(check, timeoutMs)] as const),
    ),
  );
}

async function runCheck(check: () => Promise<unknown>, timeoutMs: number): Promise<ReadinessCheck> {
  const started = performance.now();
  const latencyMs = () => Math.round(performance.now() - started);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([check(), deadline]);
    return { ok: true, latencyMs: latencyMs() };
  } catch (error) {
    return {
      ok: false,
      latencyMs: latencyMs(),
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    clearTimeout(timer);
  }
}
