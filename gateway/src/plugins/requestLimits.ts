import { ApolloServerErrorCode } from '@apollo/server/errors';
import { context } from '@opentelemetry/api';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { Lexer, Source, TokenKind } from 'graphql';
import { createTextCache } from '../../../lib/graphql/createTextCache.ts';
import { ErrorCode } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/logger.ts';
import { recordGraphQLRequest, type Metrics } from '../../../lib/observability/createMetrics.ts';

export interface RequestLimits {
  maxBodyBytes: number;
  maxBatch: number;
  maxTokens: number;
}

export interface RequestLimitsDeps {
  logger: Logger;
  metrics: Metrics;
  production: boolean;
}

/**
 * The checks on the raw HTTP request, before Apollo Server parses anything: body size (413),
 * operations per batch and lexical tokens per operation, each answered with a GraphQL-shaped
 * OPERATION_LIMIT error, so nothing reaches the gateway's planner or a subgraph; and a body that
 * cannot be read (not JSON, a charset other than UTF-8) answered as Apollo Server answers a bad
 * request (BAD_REQUEST), never with Express's HTML error page and its stack trace.
 *
 * Apollo Server never sees these requests, so its plugins neither log nor count them: each
 * refusal here writes the gateway's log line and counts in graphql_requests_total and
 * graphql_errors_total itself. Mount `handlers` after traceRequests (the request id and span)
 * and before the GraphQL handler, and `errors` after it: it also turns what the GraphQL handler
 * throws into a JSON answer.
 *
 * Counting tokens here (graphql's own lexer, stopping one past the limit) rather than with
 * parse's `maxTokens` keeps the code stable: parse would report GRAPHQL_PARSE_FAILED.
 */
export function createRequestLimits(
  limits: RequestLimits,
  { logger, metrics, production }: RequestLimitsDeps,
): { handlers: RequestHandler[]; errors: ErrorRequestHandler } {
  const startedAt = new WeakMap<Request, bigint>();
  const parseJson = express.json({ limit: limits.maxBodyBytes });
  // body-parser resumes the chain from the socket's stream events, outside this request's async
  // context: bound back to it, the handlers after it (and their log lines) keep the request id.
  const parse: RequestHandler = (req, res, next) => {
    startedAt.set(req, process.hrtime.bigint());
    parseJson(req, res, context.bind(context.active(), next));
  };

  function refuse(
    req: Request,
    res: Response,
    status: number,
    error: { message: string; code: string; extensions?: Record<string, unknown> },
  ): void {
    const started = startedAt.get(req) ?? process.hrtime.bigint();
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const body: unknown = req.body;
    const name = (body as { operationName?: unknown } | undefined)?.operationName;
    const operationName = typeof name === 'string' && !Array.isArray(body) ? name : null;
    recordGraphQLRequest(metrics, {
      operationName,
      type: 'unknown',
      durationSeconds,
      errorCodes: [error.code],
    });
    logger.info(
      {
        operation: operationName,
        type: null,
        durationMs: Math.round(durationSeconds * 1e4) / 10,
        status,
        errorCodes: [error.code],
      },
      'graphql request refused',
    );
    res
      .status(status)
      .json({ errors: [{ message: error.message, extensions: { code: error.code, ...error.extensions } }] });
  }

  // Clients send the same few operation texts over and over; lexing each one again per request
  // was ~1 % of the gateway's CPU in the federation benchmark's profile. Only texts within the
  // limit are remembered (a refused one is not worth the space), bounded by their total length.
  const withinTokenLimit = createTextCache<true>();
  const tooManyTokens = (query: string): boolean => {
    if (withinTokenLimit.has(query)) return false;
    if (countTokens(query, limits.maxTokens) > limits.maxTokens) return true;
    withinTokenLimit.set(query, true);
    return false;
  };

  const overLimit = (req: Request, res: Response, status: number, message: string, extensions: object) =>
    refuse(req, res, status, { message, code: ErrorCode.OPERATION_LIMIT, extensions: { ...extensions } });

  const check: RequestHandler = (req, res, next) => {
    const body: unknown = req.body;
    const operations = Array.isArray(body) ? body : [req.method === 'GET' ? req.query : body];
    if (operations.length > limits.maxBatch) {
      return overLimit(
        req,
        res,
        400,
        `The batch has ${operations.length} operations; at most ${limits.maxBatch} are allowed.`,
        { limit: 'batch', max: limits.maxBatch, actual: operations.length },
      );
    }
    for (const operation of operations) {
      const query = (operation as { query?: unknown } | null)?.query;
      if (typeof query !== 'string') continue;
      if (tooManyTokens(query)) {
        return overLimit(req, res, 400, `The operation has more than ${limits.maxTokens} tokens.`, {
          limit: 'tokens',
          max: limits.maxTokens,
        });
      }
    }
    next();
  };

  const errors: ErrorRequestHandler = (error: unknown, req, res, next) => {
    // Too late to answer (the GraphQL handler failed mid-stream): Express ends the response.
    if (res.headersSent) return next(error);
    const { type, status } = (error ?? {}) as { type?: unknown; status?: unknown };
    if (type === 'entity.too.large') {
      return overLimit(req, res, 413, `The request body is larger than ${limits.maxBodyBytes} bytes.`, {
        limit: 'bodyBytes',
        max: limits.maxBodyBytes,
      });
    }
    // body-parser's errors carry a `type` and a 4xx status (400 malformed, 415 charset/encoding).
    if (typeof type === 'string' && typeof status === 'number' && status >= 400 && status < 500) {
      return refuse(req, res, status, {
        message: unreadableBodyMessage(type),
        code: ApolloServerErrorCode.BAD_REQUEST,
      });
    }
    logger.error({ err: error }, 'unexpected error handling a GraphQL request');
    refuse(req, res, 500, {
      message: production || !(error instanceof Error) ? 'Internal server error' : error.message,
      code: ErrorCode.INTERNAL_SERVER_ERROR,
    });
  };

  return { handlers: [parse, check], errors };
}

function unreadableBodyMessage(type: string): string {
  switch (type) {
    case 'entity.parse.failed':
      return 'The request body is not valid JSON.';
    case 'charset.unsupported':
      return 'The request body must be JSON in UTF-8 (the content-type names another charset).';
    case 'encoding.unsupported':
      return 'The request body uses a content-encoding the gateway does not accept.';
    default:
      return 'The request body could not be read.';
  }
}

/** Lexical tokens of `query` as graphql's parser counts them, stopping at `max` + 1. */
function countTokens(query: string, max: number): number {
  const lexer = new Lexer(new Source(query));
  let count = 0;
  try {
    while (lexer.advance().kind !== TokenKind.EOF) {
      if (++count > max) break;
    }
  } catch {
    // A syntax error: Apollo Server reports it properly when it parses.
  }
  return count;
}
