import { randomUUID } from 'node:crypto';
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import type { Logger } from '../../logger.ts';
import { MessagingError } from '../messagingError.ts';
import { toMessagingError } from './toMessagingError.ts';

/**
 * Header carrying a per-publish tag. RabbitMQ sends basic.return (unroutable) before the
 * basic.ack of the same message, but neither names the other; the tag ties them together so
 * an unroutable publish rejects instead of "succeeding" into nowhere. Consumers strip it.
 */
export const PUBLISH_TAG_HEADER = 'x-publish-tag';

export interface ConfirmedChannel {
  readonly channel: ConfirmChannel;
  isOpen(): boolean;
  /**
   * Publishes with `mandatory` and resolves once the broker confirmed it. Rejects with a
   * MessagingError: not retriable when the job is unroutable or the exchange does not exist,
   * retriable when the channel closed or no confirm came within `timeoutMs`.
   */
  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish,
    timeoutMs: number,
  ): Promise<void>;
}

export interface OpenConfirmChannelOptions {
  logger: Logger;
  /** Called once when the channel is closed, by us, the server or a lost connection. */
  onClose?: (error: Error | undefined) => void;
}

/** A ConfirmChannel whose `error` and `close` events are always handled. */
export async function openConfirmChannel(
  model: ChannelModel,
  { logger, onClose }: OpenConfirmChannelOptions,
): Promise<ConfirmedChannel> {
  const channel = await model.createConfirmChannel();
  let open = true;
  let closeError: Error | undefined;
  const pending = new Map<string, { returned: boolean }>();
  // An 'error' event without a listener would throw and crash the process; amqplib emits it
  // just before 'close' when the server closes the channel (e.g. 404 on a missing exchange).
  channel.on('error', (error: Error) => {
    closeError = error;
    logger.warn({ err: error }, 'RabbitMQ channel closed with an error');
  });
  channel.on('close', () => {
    open = false;
    onClose?.(closeError);
  });
  channel.on('return', (message: { properties: { headers?: Record<string, unknown> } }) => {
    const tag = message.properties.headers?.[PUBLISH_TAG_HEADER];
    const entry = typeof tag === 'string' ? pending.get(tag) : undefined;
    if (entry) entry.returned = true;
  });

  return {
    channel,
    isOpen: () => open,
    publish(exchange, routingKey, content, options, timeoutMs) {
      const where = `publish to ${exchange || '(default exchange)'} with key ${routingKey}`;
      return new Promise<void>((resolve, reject) => {
        const tag = randomUUID();
        const entry = { returned: false };
        pending.set(tag, entry);
        let settled = false;
        const finish = (error?: MessagingError) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          pending.delete(tag);
          if (error) reject(error);
          else resolve();
        };
        // The job may still be confirmed later: the caller retries and consumers deduplicate.
        const timer = setTimeout(() => {
          finish(new MessagingError(`${where}: not confirmed within ${timeoutMs} ms`, { retriable: true }));
        }, timeoutMs);
        try {
          channel.publish(
            exchange,
            routingKey,
            content,
            {
              ...options,
              mandatory: true,
              headers: { ...(options.headers as Record<string, unknown>), [PUBLISH_TAG_HEADER]: tag },
            },
            (error: unknown) => {
              if (error) {
                // The callback only says "channel closed"; the reason (404 NOT_FOUND...) came
                // with the channel's 'error' event just before.
                finish(toMessagingError(closeError ?? error, where));
              } else if (entry.returned) {
                finish(
                  new MessagingError(`${where}: unroutable, no queue is bound for it`, { retriable: false }),
                );
              } else {
                finish();
              }
            },
          );
        } catch (error) {
          // amqplib throws synchronously on a closed channel.
          finish(toMessagingError(error, where));
        }
      });
    },
  };
}
