import { Role } from '../../../../lib/auth/tokens.ts';
import type { Logger } from '../../../../lib/logger.ts';
import type { Metrics } from '../../../../lib/observability/createMetrics.ts';
import { createPollingLoop } from '../../../../lib/resilience/createPollingLoop.ts';
import type { SubgraphClient } from './createSubgraphClient.ts';
import { SubgraphCallError } from './createSubgraphClient.ts';
import {
  SAGA_STEPS,
  SagaLeaseLostError,
  type SagaOrder,
  type SagaStepName,
  type SagaStore,
  type Transition,
} from './sagaStore.ts';

export interface SagaClients {
  users: SubgraphClient;
  products: SubgraphClient;
  payments: SubgraphClient;
}

/** A step's permanent outcome: the order cannot go on, and the saga compensates. */
class StepFailure extends Error {
  constructor(
    message: string,
    readonly transition: Transition = {},
  ) {
    super(message);
  }
}

/** The runner is stopping: the step is abandoned as it is, and resumed on the next start. */
class Abandoned extends Error {}

/** A charge can take ~11 s inside payments (three provider attempts with timeouts). */
export const CHARGE_TIMEOUT_MS = 15_000;

const USER_QUERY = `query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id email } } }`;
const RESERVE = `mutation($input: ReserveStockInput!) { reserveStock(input: $input) { id status reason } }`;
const RELEASE = `mutation($key: String) { releaseReservation(idempotencyKey: $key) { id status reason } }`;
const COMMIT = `mutation($id: ID!) { commitReservation(id: $id) { id status } }`;
const CHARGE = `mutation($input: ChargePaymentInput!) { chargePayment(input: $input) { status reason payment { id } } }`;
const PAYMENT_OF_ORDER = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Order { payment { id status } } } }`;
const REFUND = `mutation($input: RefundPaymentInput!) { refundPayment(input: $input) { id status } }`;

export const reserveKey = (orderId: string) => `${orderId}:reserve-stock`;

/**
 * The order saga: VALIDATE_USER → RESERVE_STOCK → CHARGE_PAYMENT → CONFIRM_ORDER, then on a
 * failure compensation in reverse order (refund, release stock). Every transition is recorded
 * (with its events) before the next call, and every call carries a key derived from the order
 * and step, so a saga resumed after a crash re-runs its last step without applying it twice.
 *
 * Several replicas may share the orders database: a saga runs only under its lease (sagaStore),
 * which the runner renews every third of `leaseMs` while it runs. The same round takes over
 * in-flight sagas whose lease lapsed (their replica was killed), so they need no restart.
 */
export function createSagaRunner({
  store,
  clients,
  logger,
  abort,
  leaseMs,
  metrics,
}: {
  store: SagaStore;
  clients: SagaClients;
  logger: Logger;
  /** Aborts the clients' calls in flight; the runner fires it on stop. */
  abort?: AbortController;
  /** The store's lease duration: leases are renewed, and lapsed ones looked for, 3 times per lease. */
  leaseMs: number;
  /** `saga_outcomes_total` and `saga_step_duration_seconds`. */
  metrics?: Metrics;
}) {
  const outcomes = metrics?.counter({
    name: 'saga_outcomes_total',
    help: 'Order sagas that ended, by outcome (confirmed, cancelled)',
    labelNames: ['outcome'],
  });
  const stepDuration = metrics?.histogram({
    name: 'saga_step_duration_seconds',
    help: 'Time a saga step spent calling its service, retries included, by step and outcome',
    labelNames: ['step', 'outcome'],
  });
  const running = new Map<string, Promise<void>>();
  let stopping = false;
  const leases = createPollingLoop({
    name: 'saga leases',
    logger,
    pollIntervalMs: Math.max(1, Math.floor(leaseMs / 3)),
    step: async () => {
      await store.renew([...running.keys()]);
      await resumeAll();
      return undefined;
    },
  });

  const asUser = (order: SagaOrder) => ({ id: order.userId, role: Role.CUSTOMER });

  function checkStopping() {
    if (stopping) throw new Abandoned('saga runner stopping');
  }

  /** A call's failure: abandoned when stopping, a step failure otherwise (retries are done). */
  function failureOf(error: unknown): Error {
    if (stopping) return new Abandoned('saga runner stopping');
    if (error instanceof StepFailure) return error;
    if (error instanceof SubgraphCallError) return new StepFailure(error.message);
    return error instanceof Error ? error : new Error(String(error));
  }

  async function execute(step: SagaStepName, order: SagaOrder): Promise<Transition> {
    switch (step) {
      case 'VALIDATE_USER': {
        const data = await clients.users.request<{ _entities: ({ id: string; email: string } | null)[] }>(
          USER_QUERY,
          { r: [{ __typename: 'User', id: order.userId }] },
          { viewer: asUser(order) },
        );
        const user = data._entities[0];
        if (!user) throw new StepFailure(`user ${order.userId} does not exist`);
        return { order: { userEmail: user.email } };
      }
      case 'RESERVE_STOCK': {
        const { reserveStock } = await clients.products.request<{
          reserveStock: { id: string; status: string; reason: string | null };
        }>(RESERVE, {
          input: {
            idempotencyKey: reserveKey(order.id),
            orderId: order.id,
            items: order.items.map(({ productId, quantity }) => ({ productId, quantity })),
          },
        });
        if (reserveStock.status !== 'HELD') {
          throw new StepFailure(
            reserveStock.reason ?? `stock reservation ${reserveStock.status.toLowerCase()}`,
          );
        }
        return {
          order: { reservationId: reserveStock.id },
          events: [{ type: 'StockReserved', extra: { reservationId: reserveStock.id } }],
        };
      }
      case 'CHARGE_PAYMENT': {
        const { chargePayment } = await clients.payments.request<{
          chargePayment: { status: string; reason: string | null; payment: { id: string } };
        }>(
          CHARGE,
          {
            input: {
              idempotencyKey: `${order.id}:charge`,
              orderId: order.id,
              userId: order.userId,
              amountCents: order.totalCents,
              paymentToken: order.paymentToken,
            },
          },
          { timeoutMs: CHARGE_TIMEOUT_MS },
        );
        const paymentId = chargePayment.payment.id;
        if (chargePayment.status !== 'CAPTURED') {
          const reason = chargePayment.reason ?? `payment ${chargePayment.status.toLowerCase()}`;
          throw new StepFailure(reason, {
            order: { paymentId },
            events: [{ type: 'PaymentFailed', extra: { paymentId, reason } }],
          });
        }
        return { order: { paymentId }, events: [{ type: 'PaymentCaptured', extra: { paymentId } }] };
      }
      case 'CONFIRM_ORDER': {
        const reservationId = order.reservationId;
        if (!reservationId) throw new StepFailure('no stock reservation to commit');
        await clients.products.request(COMMIT, { id: reservationId });
        return {
          order: { status: 'CONFIRMED', sagaState: 'COMPLETED' },
          events: [{ type: 'OrderConfirmed' }],
        };
      }
    }
  }

  async function forward(initial: SagaOrder): Promise<SagaOrder> {
    let order = initial;
    for (const name of SAGA_STEPS) {
      const step = order.steps.find((s) => s.name === name);
      if (!step || step.status === 'SUCCEEDED' || step.status === 'SKIPPED') continue;
      checkStopping();
      order = await store.apply(order.id, { steps: [{ name, status: 'RUNNING' }] });
      let outcome: Transition;
      const started = performance.now();
      const observe = (result: string) =>
        stepDuration?.observe({ step: name, outcome: result }, (performance.now() - started) / 1000);
      try {
        outcome = await execute(name, order);
        observe('succeeded');
      } catch (error) {
        const failure = failureOf(error);
        observe(failure instanceof StepFailure ? 'failed' : 'interrupted');
        if (!(failure instanceof StepFailure)) throw failure;
        logger.info({ orderId: order.id, step: name, reason: failure.message }, 'saga step failed');
        return store.apply(order.id, {
          ...failure.transition,
          steps: [{ name, status: 'FAILED', error: failure.message }],
          order: { ...failure.transition.order, sagaState: 'COMPENSATING', failureReason: failure.message },
        });
      }
      order = await store.apply(order.id, { ...outcome, steps: [{ name, status: 'SUCCEEDED' }] });
    }
    return order;
  }

  /** Refund, then release: each recorded with its event, then the order CANCELLED. */
  async function compensate(initial: SagaOrder): Promise<void> {
    let order = initial;
    const statusOf = (name: SagaStepName) => order.steps.find((s) => s.name === name)?.status;
    let complete = true;
    const attempted = (status: string | undefined) =>
      status === 'SUCCEEDED' || status === 'RUNNING' || status === 'FAILED';

    const charge = statusOf('CHARGE_PAYMENT');
    if (attempted(charge)) {
      checkStopping();
      try {
        // Whatever the step recorded, payments knows whether this order was captured.
        const data = await clients.payments.request<{
          _entities: ({ payment: { id: string; status: string } | null } | null)[];
        }>(PAYMENT_OF_ORDER, { r: [{ __typename: 'Order', id: order.id }] });
        const payment = data._entities[0]?.payment;
        const events: Transition['events'] = [];
        if (payment && payment.status === 'CAPTURED') {
          await clients.payments.request(REFUND, {
            input: { idempotencyKey: `${order.id}:refund`, paymentId: payment.id },
          });
          events.push({ type: 'PaymentRefunded', extra: { paymentId: payment.id } });
        }
        order = await store.apply(order.id, {
          steps:
            charge === 'FAILED'
              ? []
              : [{ name: 'CHARGE_PAYMENT', status: payment ? 'COMPENSATED' : 'SKIPPED' }],
          events,
        });
      } catch (error) {
        const failure = failureOf(error);
        if (!(failure instanceof StepFailure)) throw failure;
        logger.error({ orderId: order.id, err: error }, 'refund failed');
        complete = false;
      }
    }

    const reserve = statusOf('RESERVE_STOCK');
    if (attempted(reserve)) {
      checkStopping();
      try {
        // By key: also records the release when the reserve never arrived, so a late one holds nothing.
        const { releaseReservation } = await clients.products.request<{
          releaseReservation: { status: string; reason: string | null };
        }>(RELEASE, { key: reserveKey(order.id) });
        // A reservation that expired meanwhile gave its units back on its own: the event says so
        // rather than claim this release did it.
        const expired = releaseReservation.status === 'EXPIRED';
        order = await store.apply(order.id, {
          steps: reserve === 'FAILED' ? [] : [{ name: 'RESERVE_STOCK', status: 'COMPENSATED' }],
          events:
            reserve === 'SUCCEEDED'
              ? [
                  {
                    type: 'StockReleased',
                    extra: expired ? { reason: releaseReservation.reason ?? 'reservation expired' } : {},
                  },
                ]
              : [],
        });
      } catch (error) {
        const failure = failureOf(error);
        if (!(failure instanceof StepFailure)) throw failure;
        logger.error({ orderId: order.id, err: error }, 'stock release failed');
        complete = false;
      }
    }

    checkStopping();
    const skipped = order.steps
      .filter((s) => s.status === 'PENDING')
      .map((s) => ({ name: s.name, status: 'SKIPPED' as const }));
    await store.apply(order.id, {
      steps: skipped,
      order: { status: 'CANCELLED', sagaState: complete ? 'COMPENSATED' : 'FAILED' },
      events: [{ type: 'OrderCancelled', extra: { reason: order.failureReason ?? 'cancelled' } }],
    });
  }

  async function drive(orderId: string): Promise<void> {
    // Another replica runs it (or it just ended): nothing to do here.
    if (!(await store.claim(orderId))) return;
    let order = await store.load(orderId);
    if (!order) return;
    if (order.sagaState === 'RUNNING') order = await forward(order);
    if (order.sagaState === 'COMPLETED') {
      outcomes?.inc({ outcome: 'confirmed' });
      logger.info({ orderId }, 'saga completed: order confirmed');
    } else if (order.sagaState === 'COMPENSATING') {
      await compensate(order);
      outcomes?.inc({ outcome: 'cancelled' });
      logger.info({ orderId, reason: order.failureReason }, 'saga compensated: order cancelled');
    }
  }

  /**
   * Runs (or resumes) an order's saga if no other replica holds it; resolves when it ends, is
   * abandoned on stop, or at once when another replica runs it.
   */
  function run(orderId: string): Promise<void> {
    const existing = running.get(orderId);
    if (existing) return existing;
    if (stopping) return Promise.resolve();
    const promise = drive(orderId)
      .catch((error: unknown) => {
        if (error instanceof Abandoned) {
          logger.info({ orderId }, 'saga abandoned on stop; another replica or the next start resumes it');
        } else if (error instanceof SagaLeaseLostError) {
          logger.warn({ orderId }, 'saga lease lost: another replica runs it now');
        } else {
          logger.error({ orderId, err: error }, 'saga interrupted; it resumes on the next lease round');
        }
      })
      // Ended or abandoned: whoever comes next need not wait for the lease to lapse.
      .finally(() =>
        store
          .release(orderId)
          .catch((error: unknown) => logger.warn({ orderId, err: error }, 'saga lease not released'))
          .finally(() => running.delete(orderId)),
      );
    running.set(orderId, promise);
    return promise;
  }

  /** Starts every in-flight saga that no live replica holds (a crash, a stop, a lapsed lease). */
  async function resumeAll(): Promise<number> {
    if (stopping) return 0;
    const ids = (await store.unowned()).filter((id) => !running.has(id));
    for (const id of ids) void run(id);
    if (ids.length) logger.info({ count: ids.length }, 'resuming in-flight sagas');
    return ids.length;
  }

  return {
    run,
    resumeAll,

    /** Resumes what is left to resume, then keeps the leases of running sagas and takes over lapsed ones. */
    async start(): Promise<void> {
      await resumeAll();
      leases.start();
    },

    /** Lets no saga start and waits for those in flight to finish their step or be abandoned. */
    async stop(): Promise<void> {
      stopping = true;
      abort?.abort();
      await leases.stop();
      await Promise.all(running.values());
    },
  };
}
export type SagaRunner = ReturnType<typeof createSagaRunner>;
