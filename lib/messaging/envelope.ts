import { z } from 'zod';

/** The envelope of every event on the stream (API.md, "Events"). */
export interface EventEnvelope<T = unknown> {
  eventId: string;
  /** Past tense: OrderPlaced, UserSignedUp, ... */
  eventType: string;
  occurredAt: string;
  /** The entity the event is about; also the message key. */
  aggregateId: string;
  /** The aggregate's version after this event (1 for its first event). */
  version: number;
  data: T;
}

export const eventEnvelopeSchema = z.object({
  eventId: z.uuid(),
  eventType: z.string().min(1),
  occurredAt: z.iso.datetime({ offset: true }),
  aggregateId: z.string().min(1),
  version: z.number().int().positive(),
  data: z.unknown(),
});
