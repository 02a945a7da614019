import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { createMemoryWorkQueue } from './memory/createMemoryWorkQueue.ts';
import { createRabbitWorkQueue } from './rabbit/createRabbitWorkQueue.ts';
import type { MessagingError } from './messagingError.ts';
import type { WorkQueue } from './workQueue.ts';
import { workQueueWithNamespace } from './withNamespace.ts';

/**
 * The work queue configuration asks for: RabbitMQ with RABBITMQ_URL, else the in-memory adapter
 * (one process only).
 */
export function createWorkQueue(
  config: Config,
  logger: Logger,
  {
    connectionName,
    onFatal,
  }: {
    connectionName: string;
    /** RabbitMQ lost for good (reconnects exhausted): the process's main decides (exit non-zero). */
    onFatal: (error: MessagingError) => void;
  },
): WorkQueue {
  const queue = config.RABBITMQ_URL
    ? createRabbitWorkQueue({ url: config.RABBITMQ_URL, logger, connectionName, onFatal })
    : createMemoryWorkQueue({ logger });
  return workQueueWithNamespace(queue, config.MESSAGING_NAMESPACE);
}
