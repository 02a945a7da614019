import type { ApolloServerPlugin } from '@apollo/server';
import type { RequestHandler } from 'express';
import { errorCodeOf } from '../errors.ts';
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
} from 'prom-client';

/**
 * One service's Prometheus registry. Services are built apart and several may share a process
 * (`npm start`), so each gets its own registry (no prom-client global) and `/metrics` of a
 * service shows that service's series, each labelled `service`.
 */
export interface Metrics {
  readonly registry: Registry;
  /** Get-or-create, so two modules of one service asking for the same family share it. */
  counter<L extends string>(config: CounterConfiguration<L>): Counter<L>;
  gauge<L extends string>(config: GaugeConfiguration<L>): Gauge<L>;
  histogram<L extends string>(config: HistogramConfiguration<L>): Histogram<L>;
  /** `GET /metrics` in the Prometheus text format. */
  handler: RequestHandler;
}

/** Latency buckets in seconds, from a cache hit to a saga step that retries a slow card processor. */
export const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createMetrics({ service }: { service: string }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  // Process CPU, memory, event-loop lag, GC: what /health summarises, as series.
  collectDefaultMetrics({ register: registry });
  function getOrCreate<M>(name: string, create: () => M): M {
    return (registry.getSingleMetric(name) as M | undefined) ?? create();
  }
  return {
    registry,
    counter: (config) => getOrCreate(config.name, () => new Counter({ ...config, registers: [registry] })),
    gauge: (config) => getOrCreate(config.name, () => new Gauge({ ...config, registers: [registry] })),
    histogram: (config) =>
      getOrCreate(
        config.name,
        () => new Histogram({ buckets: DURATION_BUCKETS_SECONDS, ...config, registers: [registry] }),
      ),
    handler: (_req, res, next) => {
      registry.metrics().then((text) => res.type(registry.contentType).send(text), next);
    },
  };
}

/** Operation names come from clients: bound the label's length and alphabet. */
function operationLabel(name: string | null | undefined): string {
  if (!name) return 'anonymous';
  return /^[_A-Za-z][_0-9A-Za-z]{0,63}$/.test(name) ? name : 'invalid';
}

/** Request counts, durations and errors by code, per GraphQL operation (gateway and subgraphs). */
export function createRequestMetricsPlugin(metrics: Metrics): ApolloServerPlugin {
  const requests = metrics.counter({
    name: 'graphql_requests_total',
    help: 'GraphQL operations handled, by operation name, type and outcome',
    labelNames: ['operation', 'type', 'outcome'],
  });
  const duration = metrics.histogram({
    name: 'graphql_request_duration_seconds',
    help: 'Time from receiving a GraphQL operation to sending its response',
    labelNames: ['operation', 'type'],
  });
  const errors = metrics.counter({
    name: 'graphql_errors_total',
    help: 'GraphQL errors sent to clients, by extensions.code',
    labelNames: ['code'],
  });
  return {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async willSendResponse({ operationName, operation, errors: sent }) {
          const labels = {
            operation: operationLabel(operationName),
            type: operation?.operation ?? 'unknown',
          };
          duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
          requests.inc({ ...labels, outcome: sent?.length ? 'error' : 'ok' });
          for (const error of sent ?? []) {
            errors.inc({ code: errorCodeOf(error) ?? 'INTERNAL_SERVER_ERROR' });
          }
        },
      };
    },
  };
}
