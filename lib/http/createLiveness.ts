import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface LivenessReport {
  status: 'ok';
  service: string;
  uptimeSeconds: number;
  pid: number;
  /** Event-loop delay since the previous report (or the start), in ms. */
  eventLoopLagMs: { mean: number; p99: number; max: number };
  memory: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number };
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/**
 * The body of GET /health: the process answers, and how it is doing (event-loop lag, memory,
 * uptime). It checks no dependency (that is /ready), so a database outage never gets a live
 * process restarted. `close()` stops the event-loop sampler.
 */
export function createLiveness(service: string) {
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  return {
    report(): LivenessReport {
      const nsToMs = (ns: number) => round(Number.isFinite(ns) ? ns / 1e6 : 0);
      const eventLoopLagMs = {
        mean: nsToMs(lag.mean),
        p99: nsToMs(lag.percentile(99)),
        max: nsToMs(lag.max),
      };
      lag.reset();
      const memory = process.memoryUsage();
      return {
        status: 'ok',
        service,
        uptimeSeconds: Math.round(process.uptime()),
        pid: process.pid,
        eventLoopLagMs,
        memory: {
          rssBytes: memory.rss,
          heapUsedBytes: memory.heapUsed,
          heapTotalBytes: memory.heapTotal,
          externalBytes: memory.external,
        },
      };
    },
    close() {
      lag.disable();
    },
  };
}
export type Liveness = ReturnType<typeof createLiveness>;
