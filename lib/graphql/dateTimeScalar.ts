import { GraphQLScalarType, Kind } from 'graphql';
import { badUserInput } from '../errors.ts';

function parseIso(value: unknown): Date {
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
    throw badUserInput('DateTime must be an ISO-8601 string');
  }
  return new Date(value);
}

/** ISO-8601 timestamps (API.md). Accepts Date or ISO strings from resolvers. */
export const dateTimeScalar = new GraphQLScalarType({
  name: 'DateTime',
  description: 'An ISO-8601 timestamp, e.g. 2026-11-21T10:00:00.000Z',
  serialize(value) {
    const date = value instanceof Date ? value : parseIso(value);
    return date.toISOString();
  },
  parseValue: parseIso,
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw badUserInput('DateTime must be an ISO-8601 string');
    return parseIso(ast.value);
  },
});
