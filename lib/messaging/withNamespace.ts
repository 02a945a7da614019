import type { EventStream } from './eventStream.ts';
import type { WorkQueue, WorkQueueTopology } from './workQueue.ts';

/**
 * Several environments (or parallel test runs) can share one Kafka and one RabbitMQ: with
 * MESSAGING_NAMESPACE every topic, consumer group, exchange and queue name gets a prefix, and
 * the services still speak of `order-events` and `notifications`.
 */
export function eventStreamWithNamespace(inner: EventStream, namespace: string): EventStream {
  if (!namespace) return inner;
  const strip = (topic: string) => (topic.startsWith(namespace) ? topic.slice(namespace.length) : topic);
  return {
    publish: (topic, messages) => inner.publish(namespace + topic, messages),
    subscribe: (options) =>
      inner.subscribe({
        ...options,
        groupId: namespace + options.groupId,
        topics: options.topics.map((topic) => namespace + topic),
        handle: (message) => options.handle({ ...message, topic: strip(message.topic) }),
      }),
    health: () => inner.health(),
    close: () => inner.close(),
  };
}

export function workQueueWithNamespace(inner: WorkQueue, namespace: string): WorkQueue {
  if (!namespace) return inner;
  const scoped = (topology: WorkQueueTopology): WorkQueueTopology => ({
    ...topology,
    exchange: namespace + topology.exchange,
    queue: namespace + topology.queue,
  });
  return {
    declare: (topology) => inner.declare(scoped(topology)),
    publish: (exchange, routingKey, job) => inner.publish(namespace + exchange, routingKey, job),
    consume: (topology, options) => inner.consume(scoped(topology), options),
    deadLetters: (topology, options) => inner.deadLetters(scoped(topology), options),
    health: () => inner.health(),
    close: () => inner.close(),
  };
}
