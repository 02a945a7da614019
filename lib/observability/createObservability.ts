import type { Config } from '../config.ts';
import { createMetrics, type Metrics } from './createMetrics.ts';
import { createTracing, type Tracing } from './createTracing.ts';

/** What a service reports about itself: Prometheus series and trace spans. */
export interface Observability {
  service: string;
  metrics: Metrics;
  tracing: Tracing;
  /** Flushes spans not yet exported. Idempotent. */
  shutdown(): Promise<void>;
}

export function createObservability({
  service,
  config,
}: {
  service: string;
  config: Pick<Config, 'OTEL_EXPORTER_OTLP_ENDPOINT'>;
}): Observability {
  const tracing = createTracing({ service, otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT });
  return { service, metrics: createMetrics({ service }), tracing, shutdown: () => tracing.shutdown() };
}
