import type { z } from 'zod';
import { badUserInput } from '../errors.ts';

/**
 * Validates resolver input with a zod schema; every problem is listed in one BAD_USER_INPUT
 * error, each naming its field, so a client can fix all of them in one go.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => ({
    field: issue.path.join('.'),
    message: issue.message,
  }));
  const message = problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join('; ');
  throw badUserInput(message, { problems });
}
