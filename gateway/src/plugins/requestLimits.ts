import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { Lexer, Source, TokenKind } from 'graphql';
import { ErrorCode } from '../../../lib/errors.ts';

export interface RequestLimits {
  maxBodyBytes: number;
  maxBatch: number;
  maxTokens: number;
}

/**
 * The limits checked on the raw HTTP request, before Apollo Server parses anything: body size
 * (413), operations per batch and lexical tokens per operation. Each answers a GraphQL-shaped
 * error with OPERATION_LIMIT, and nothing reaches the gateway's planner or a subgraph.
 * Counting tokens here (graphql's own lexer, stopping one past the limit) rather than with
 * parse's `maxTokens` keeps the code stable: parse would report GRAPHQL_PARSE_FAILED.
 */
export function createRequestLimits(limits: RequestLimits): (RequestHandler | ErrorRequestHandler)[] {
  const tooLarge: ErrorRequestHandler = (error: { type?: string }, _req, res, next) => {
    if (error.type !== 'entity.too.large') return next(error);
    reject(res, 413, `The request body is larger than ${limits.maxBodyBytes} bytes.`, {
      limit: 'bodyBytes',
      max: limits.maxBodyBytes,
    });
  };

  const check: RequestHandler = (req, res, next) => {
    const body: unknown = req.body;
    const operations = Array.isArray(body) ? body : [req.method === 'GET' ? req.query : body];
    if (operations.length > limits.maxBatch) {
      return reject(
        res,
        400,
        `The batch has ${operations.length} operations; at most ${limits.maxBatch} are allowed.`,
        {
          limit: 'batch',
          max: limits.maxBatch,
          actual: operations.length,
        },
      );
    }
    for (const operation of operations) {
      const query = (operation as { query?: unknown } | null)?.query;
      if (typeof query !== 'string') continue;
      if (countTokens(query, limits.maxTokens) > limits.maxTokens) {
        return reject(res, 400, `The operation has more than ${limits.maxTokens} tokens.`, {
          limit: 'tokens',
          max: limits.maxTokens,
        });
      }
    }
    next();
  };

  return [express.json({ limit: limits.maxBodyBytes }), tooLarge, check];
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

function reject(
  res: express.Response,
  status: number,
  message: string,
  extensions: Record<string, unknown>,
): void {
  res
    .status(status)
    .json({ errors: [{ message, extensions: { code: ErrorCode.OPERATION_LIMIT, ...extensions } }] });
}
