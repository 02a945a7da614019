import type { ApolloServerPlugin } from '@apollo/server';
import type { RequestHandler } from 'express';
import { errorCodesOf } from '../errors.ts';
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
  /**
   * The `operation` label for a client-chosen operation name: the name itself for the first
   * `maxOperationNames` distinct ones, `other` after that (`anonymous` without a name, `invalid`
   * for one that is not a short GraphQL name).
   */
  operationLabel(name: string | null | undefined): string;
  /** `GET /metrics` in the Prometheus text format. */
  handler: RequestHandler;
}

/** Latency buckets in seconds, from a cache hit to a saga step that retries a slow card processor. */
export const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Distinct operation names a service labels series with. Far above what this project's clients
 * send (the dashboard, Sandbox users, the README's examples), far below what hurts Prometheus.
 */
export const MAX_OPERATION_NAMES = 100;

export function createMetrics({
  service,
  maxOperationNames = MAX_OPERATION_NAMES,
}: {
  service: string;
  maxOperationNames?: number;
}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  // Process CPU, memory, event-loop lag, GC: what /health summarises, as series.
  collectDefaultMetrics({ register: registry });
  function getOrCreate<M>(name: string, create: () => M): M {
    return (registry.getSingleMetric(name) as M | undefined) ?? create();
  }
  // Operation names come from clients. Every distinct name is a new series in every family that
  // carries it, kept for the life of the process: a client sending random names would grow this
  // registry (and each scrape) without end, here and in every subgraph its operations reach
  // (the gateway names subgraph fetches after the client's operation). Checking length and
  // alphabet bounds one name, not how many there are; this bounds how many.
  const operationNames = new Set<string>();
  function operationLabel(name: string | null | undefined): string {
    if (!name) return 'anonymous';
    if (!/^[_A-Za-z][_0-9A-Za-z]{0,63}$/.test(name)) return 'invalid';
    if (operationNames.has(name)) return name;
    if (operationNames.size >= maxOperationNames) return 'other';
    operationNames.add(name);
    return name;
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
    operationLabel,
    handler: (_req, res, next) => {
      registry.metrics().then((text) => res.type(registry.contentType).send(text), next);
    },
  };
}

/** One GraphQL request as the request series count it. */
export interface GraphQLRequestRecord {
  /** As the client named it (bounded by `Metrics.operationLabel`). */
  operationName: string | null | undefined;
  /** `query`, `mutation`, `subscription`, or `unknown` when no operation was resolved. */
  type: string;
  durationSeconds: number;
  /** `extensions.code` of each error sent (INTERNAL_SERVER_ERROR for one without). */
  errorCodes: readonly string[];
}

/**
 * Counts one GraphQL request in `graphql_requests_total`, `graphql_request_duration_seconds` and
 * `graphql_errors_total`: from the plugin below, and from the gateway's refusals of requests
 * Apollo Server never sees (too large, malformed).
 */
export function recordGraphQLRequest(metrics: Metrics, record: GraphQLRequestRecord): void {
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
  const labels = { operation: metrics.operationLabel(record.operationName), type: record.type };
  duration.observe(labels, record.durationSeconds);
  requests.inc({ ...labels, outcome: record.errorCodes.length > 0 ? 'error' : 'ok' });
  for (const code of record.errorCodes) errors.inc({ code });
}

/** Request counts, durations and errors by code, per GraphQL operation (gateway and subgraphs). */
export function createRequestMetricsPlugin(metrics: Metrics): ApolloServerPlugin {
  return {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async willSendResponse({ operationName, operation, errors }) {
          recordGraphQLRequest(metrics, {
            operationName,
            type: operation?.operation ?? 'unknown',
            durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
            errorCodes: errorCodesOf(errors),
          });
        },
      };
    },
  };
}
