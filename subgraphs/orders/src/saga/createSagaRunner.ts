import { setTimeout as delay } from 'node:timers/promises';
import { Role } from '../../../../lib/auth/tokens.ts';
import type { Logger } from '../../../../lib/logger.ts';
import type { Metrics } from '../../../../lib/observability/createMetrics.ts';
import { createPollingLoop } from '../../../../lib/resilience/createPollingLoop.ts';
import type { SubgraphClient } from './createSubgraphClient.ts';
import { SubgraphCallError } from './createSubgraphClient.ts';
import {
  COMPENSATION_OF,
  isCompensationStep,
  SAGA_STEPS,
  SagaLeaseLostError,
  type CompensatedStepName,
  type CompensationStepName,
  type SagaOrder,
  type SagaStepName,
  type SagaStore,
  type StepName,
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
    /** The step gave up without an answer: its call may have taken effect, so it is undone too. */
    readonly mayHaveApplied = false,
  ) {
    super(message);
  }
}

/** A call that may work later (service down, timeout, a charge still running): the step is retried. */
class TransientFailure extends Error {}

/** The runner is stopping: the step is abandoned as it is, and resumed on the next start. */
class Abandoned extends Error {}

/** How the saga waits on its dependencies; see lib/config.ts (ORDER_SAGA_*) for the reasons. */
export interface SagaTiming {
  /** Before the charge is captured, a step gives up on a dependency unavailable this long. */
  stepDeadlineMs: number;
  /** Pause before a step's next attempt after a transient failure: doubles, with jitter, up to the max. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Per chargePayment call: a charge can take ~11 s inside payments (three provider attempts). */
  chargeTimeoutMs: number;
  /** How long products holds the order's units; unset: products' default. */
  reservationTtlSeconds?: number;
}

export const DEFAULT_SAGA_TIMING: SagaTiming = {
  stepDeadlineMs: 120_000,
  initialBackoffMs: 500,
  maxBackoffMs: 30_000,
  chargeTimeoutMs: 15_000,
};

const USER_QUERY = `query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id email } } }`;
const RESERVE = `mutation($input: ReserveStockInput!) { reserveStock(input: $input) { id status reason } }`;
const RELEASE = `mutation($key: String) { releaseReservation(idempotencyKey: $key) { id status reason } }`;
const COMMIT = `mutation($id: ID!) { commitReservation(id: $id) { id status } }`;
const CHARGE = `mutation($input: ChargePaymentInput!) { chargePayment(input: $input) { status reason payment { id } } }`;
const VOID = `mutation($input: VoidChargeInput!) { voidCharge(input: $input) { status payment { id } } }`;

export const reserveKey = (orderId: string) => `${orderId}:reserve-stock`;
export const chargeKey = (orderId: string) => `${orderId}:charge`;

/** The service each step calls, for the reason of a step that gave up on it. */
const SERVICE_OF: Record<StepName, keyof SagaClients> = {
  VALIDATE_USER: 'users',
  RESERVE_STOCK: 'products',
  CHARGE_PAYMENT: 'payments',
  CONFIRM_ORDER: 'products',
  REFUND_PAYMENT: 'payments',
  RELEASE_STOCK: 'products',
};

/**
 * The order saga: VALIDATE_USER → RESERVE_STOCK → CHARGE_PAYMENT → CONFIRM_ORDER, then on a
 * failure compensation in reverse order (REFUND_PAYMENT, RELEASE_STOCK). Every transition is
 * recorded (with its events) before the next call, and every call carries a key derived from the
 * order and step, so a saga resumed after a crash re-runs its last step without applying it twice.
 *
 * A call that fails transiently (after the client's own retries) is not an answer: the step stays
 * RUNNING and is tried again with backoff, under the saga's lease. Before the charge is captured
 * a step gives up after `stepDeadlineMs` and the saga compensates, undoing that step too (by key:
 * its call may have landed). CONFIRM_ORDER never gives up on an outage: the customer has paid, so
 * the order rolls forward until products answers. Compensation never gives up on an outage either:
 * only a definitive refusal ends a saga FAILED, with the refusal in the step log.
 *
 * Several replicas may share the orders database: a saga runs only under its lease (sagaStore),
 * which the runner renews every third of `leaseMs` while it runs, retries and pauses included.
 * The same round takes over in-flight sagas whose lease lapsed (their replica was killed).
 */
export function createSagaRunner({
  store,
  clients,
  logger,
  abort,
  leaseMs,
  metrics,
  timing: timingOverrides = {},
  random = Math.random,
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
  timing?: Partial<SagaTiming>;
  /** Jitter of the backoffs. */
  random?: () => number;
}) {
  const timing: SagaTiming = { ...DEFAULT_SAGA_TIMING, ...timingOverrides };
  const outcomes = metrics?.counter({
    name: 'saga_outcomes_total',
    help: 'Order sagas that ended, by outcome (confirmed; cancelled; failed: a compensation was refused)',
    labelNames: ['outcome'],
  });
  const stepDuration = metrics?.histogram({
    name: 'saga_step_duration_seconds',
    help: 'Time one attempt of a saga step spent calling its service, by step and outcome (retried: a transient failure)',
    labelNames: ['step', 'outcome'],
  });
  const running = new Map<string, Promise<void>>();
  // Wakes backoff pauses on stop, so a stopping runner never waits out a retry.
  const stopped = new AbortController();
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
  /** Two transitions as one: `b`'s step changes after `a`'s, its order changes over `a`'s. */
  const merge = (a: Transition | undefined, b: Transition): Transition =>
    a
      ? {
          steps: [...(a.steps ?? []), ...(b.steps ?? [])],
          compensations: [...(a.compensations ?? []), ...(b.compensations ?? [])],
          order: { ...a.order, ...b.order },
          events: [...(a.events ?? []), ...(b.events ?? [])],
        }
      : b;
  const stepOf = (order: SagaOrder, name: StepName) => order.steps.find((s) => s.name === name);

  function checkStopping() {
    if (stopping) throw new Abandoned('saga runner stopping');
  }

  /** A call's failure as the saga sees it; unexpected errors (the database) are returned as they are. */
  function classify(error: unknown): Error {
    if (stopping) return new Abandoned('saga runner stopping');
    if (error instanceof StepFailure || error instanceof TransientFailure) return error;
    if (error instanceof SubgraphCallError) {
      return error.transient ? new TransientFailure(error.message) : new StepFailure(error.message);
    }
    return error instanceof Error ? error : new Error(String(error));
  }

  /** Capped exponential backoff with jitter (half fixed, half random) before attempt `attempts + 1`. */
  function backoffMs(attempts: number): number {
    const ceiling = Math.min(timing.maxBackoffMs, timing.initialBackoffMs * 2 ** Math.max(0, attempts - 1));
    return ceiling / 2 + (random() * ceiling) / 2;
  }

  async function pause(ms: number): Promise<void> {
    try {
      await delay(ms, undefined, { signal: stopped.signal });
    } catch {
      throw new Abandoned('saga runner stopping');
    }
  }

  /**
   * Runs one step until it has an outcome: attempts (each counted in the log), transient failures
   * recorded on the step and retried after a pause, until `onTransient` turns one into a failure.
   * `done` is the previous step's outcome, not yet recorded: it is written with this step's first
   * attempt, in one transition (or alone, when the runner stops before that attempt).
   */
  async function attemptUntilDone(
    initial: SagaOrder,
    name: StepName,
    call: (order: SagaOrder) => Promise<Transition>,
    onTransient: (order: SagaOrder, failure: TransientFailure) => StepFailure | null,
    done?: Transition,
  ): Promise<{ order: SagaOrder; outcome: Transition } | { order: SagaOrder; failure: StepFailure }> {
    let order = initial;
    let unrecorded = done;
    for (;;) {
      if (stopping && unrecorded) {
        order = await store.apply(order, unrecorded);
        unrecorded = undefined;
      }
      checkStopping();
      order = await store.apply(
        order,
        merge(unrecorded, { steps: [{ name, status: 'RUNNING', attempt: true }] }),
      );
      unrecorded = undefined;
      const started = performance.now();
      const observe = (result: string) =>
        stepDuration?.observe({ step: name, outcome: result }, (performance.now() - started) / 1000);
      let failure: Error;
      try {
        const outcome = await call(order);
        observe('succeeded');
        return { order, outcome };
      } catch (error) {
        failure = classify(error);
      }
      if (failure instanceof TransientFailure) {
        observe('retried');
        order = await store.apply(order, { steps: [{ name, status: 'RUNNING', error: failure.message }] });
        const givenUp = onTransient(order, failure);
        if (givenUp) return { order, failure: givenUp };
        const attempts = stepOf(order, name)?.attempts ?? 1;
        const waitMs = backoffMs(attempts);
        logger.warn(
          { orderId: order.id, step: name, attempts, retryInMs: Math.round(waitMs), reason: failure.message },
          'saga step failed transiently; retrying',
        );
        await pause(waitMs);
        continue;
      }
      if (failure instanceof StepFailure) {
        observe('failed');
        return { order, failure };
      }
      observe('interrupted');
      throw failure;
    }
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
            ...(timing.reservationTtlSeconds ? { ttlSeconds: timing.reservationTtlSeconds } : {}),
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
              idempotencyKey: chargeKey(order.id),
              orderId: order.id,
              userId: order.userId,
              amountCents: order.totalCents,
              paymentToken: order.paymentToken,
            },
          },
          { timeoutMs: timing.chargeTimeoutMs },
        );
        const paymentId = chargePayment.payment.id;
        if (chargePayment.status !== 'CAPTURED') {
          // Payments' answer, even FAILED after its own retries (tok_timeout): nothing was taken.
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
        // Idempotent for a COMMITTED reservation: a commit whose reply was lost is confirmed on
        // the next attempt. RESERVATION_NOT_HELD (expired, released) is final: the saga refunds.
        await clients.products.request(COMMIT, { id: reservationId });
        return {
          order: { status: 'CONFIRMED', sagaState: 'COMPLETED' },
          events: [{ type: 'OrderConfirmed' }],
        };
      }
    }
  }

  /**
   * The compensation steps a failure calls for, in the order they run: a forward step is undone
   * when it succeeded, or when it is the failed one but may have landed (it gave up unanswered).
   */
  function compensationsFor(
    order: SagaOrder,
    failed: { name: SagaStepName; mayHaveApplied: boolean },
  ): CompensationStepName[] {
    const undo = (name: CompensatedStepName) =>
      stepOf(order, name)?.status === 'SUCCEEDED' || (failed.name === name && failed.mayHaveApplied);
    return (['CHARGE_PAYMENT', 'RESERVE_STOCK'] as const).filter(undo).map((name) => COMPENSATION_OF[name]);
  }

  async function forward(initial: SagaOrder): Promise<SagaOrder> {
    let order = initial;
    // A step's success is recorded with the next step's first attempt: one transition, not two.
    let succeeded: Transition | undefined;
    for (const name of SAGA_STEPS) {
      const step = stepOf(order, name);
      if (!step || step.status === 'SUCCEEDED' || step.status === 'SKIPPED') continue;
      const result = await attemptUntilDone(
        order,
        name,
        (current) => execute(name, current),
        (current, failure) => {
          // Paid for: the order rolls forward through any outage (see the class comment).
          if (name === 'CONFIRM_ORDER') return null;
          const elapsedMs = stepOf(current, name)?.elapsedMs ?? 0;
          if (elapsedMs < timing.stepDeadlineMs) return null;
          const service = SERVICE_OF[name];
          return new StepFailure(
            `${service} unavailable: ${name} gave up after ${Math.round(elapsedMs / 1000)} s (${failure.message})`,
            {},
            true,
          );
        },
        succeeded,
      );
      succeeded = undefined;
      order = result.order;
      if ('failure' in result) {
        const { failure } = result;
        logger.info({ orderId: order.id, step: name, reason: failure.message }, 'saga step failed');
        return store.apply(order, {
          ...failure.transition,
          steps: [{ name, status: 'FAILED', error: failure.message }],
          compensations: compensationsFor(order, { name, mayHaveApplied: failure.mayHaveApplied }),
          order: { ...failure.transition.order, sagaState: 'COMPENSATING', failureReason: failure.message },
        });
      }
      succeeded = merge(result.outcome, { steps: [{ name, status: 'SUCCEEDED' }] });
    }
    return succeeded ? store.apply(order, succeeded) : order;
  }

  /** One compensation step's call, and the transition that records it done (with its event). */
  async function undo(step: CompensationStepName, order: SagaOrder): Promise<Transition> {
    switch (step) {
      case 'REFUND_PAYMENT': {
        // By the charge's key, not a payment id: the saga may never have heard how its charge
        // ended, and a charge still running is refunded by payments as soon as it captures.
        const { voidCharge } = await clients.payments.request<{
          voidCharge: { status: 'REFUNDED' | 'NOTHING_CAPTURED' | 'PENDING'; payment: { id: string } | null };
        }>(VOID, { input: { chargeIdempotencyKey: chargeKey(order.id), orderId: order.id } });
        if (voidCharge.status === 'PENDING') {
          throw new TransientFailure('payments: the charge is still running; it is refunded once it ends');
        }
        const paymentId = voidCharge.payment?.id;
        const charged = stepOf(order, 'CHARGE_PAYMENT')?.status === 'SUCCEEDED';
        return {
          steps: [
            { name: 'REFUND_PAYMENT', status: 'SUCCEEDED' },
            ...(charged ? [{ name: 'CHARGE_PAYMENT' as const, status: 'COMPENSATED' as const }] : []),
          ],
          order: paymentId ? { paymentId } : {},
          // Whenever the answer says refunded, this attempt included: a refund whose reply was
          // lost (a crash) is announced by the attempt that hears of it, once, with the step.
          events: voidCharge.status === 'REFUNDED' ? [{ type: 'PaymentRefunded', extra: { paymentId } }] : [],
        };
      }
      case 'RELEASE_STOCK': {
        // By key: also records the release when the reserve never arrived, so a late one holds nothing.
        const { releaseReservation } = await clients.products.request<{
          releaseReservation: { status: string; reason: string | null };
        }>(RELEASE, { key: reserveKey(order.id) });
        const reserved = stepOf(order, 'RESERVE_STOCK')?.status === 'SUCCEEDED';
        // A reservation that expired meanwhile gave its units back on its own: the event says so
        // rather than claim this release did it.
        const expired = releaseReservation.status === 'EXPIRED';
        return {
          steps: [
            { name: 'RELEASE_STOCK', status: 'SUCCEEDED' },
            ...(reserved ? [{ name: 'RESERVE_STOCK' as const, status: 'COMPENSATED' as const }] : []),
          ],
          events: reserved
            ? [
                {
                  type: 'StockReleased',
                  extra: expired ? { reason: releaseReservation.reason ?? 'reservation expired' } : {},
                },
              ]
            : [],
        };
      }
    }
  }

  /**
   * Runs the compensation steps in the log, each until it is done: an outage is waited out (the
   * money and the stock must go back), only a definitive refusal fails a step. Then the order is
   * CANCELLED; the saga ends COMPENSATED, or FAILED when a compensation was refused.
   */
  async function compensate(initial: SagaOrder): Promise<'cancelled' | 'failed'> {
    let order = initial;
    const names = order.steps.map((step) => step.name).filter(isCompensationStep);
    for (const name of names) {
      const status = stepOf(order, name)?.status;
      if (status !== 'PENDING' && status !== 'RUNNING') continue;
      const result = await attemptUntilDone(
        order,
        name,
        (current) => undo(name, current),
        () => null,
      );
      order = result.order;
      if ('failure' in result) {
        logger.error(
          { orderId: order.id, step: name, reason: result.failure.message },
          'compensation refused: the saga ends FAILED',
        );
        order = await store.apply(order, {
          steps: [{ name, status: 'FAILED', error: result.failure.message }],
        });
      } else {
        order = await store.apply(order, result.outcome);
      }
    }

    checkStopping();
    const refused = order.steps.some((step) => isCompensationStep(step.name) && step.status === 'FAILED');
    const skipped = order.steps
      .filter((s) => s.status === 'PENDING')
      .map((s) => ({ name: s.name, status: 'SKIPPED' as const }));
    await store.apply(order, {
      steps: skipped,
      order: { status: 'CANCELLED', sagaState: refused ? 'FAILED' : 'COMPENSATED' },
      // Already CANCELLED: a saga that ended FAILED before compensation was retried, and now
      // finishes it (migrations/005); its cancellation was announced then.
      events:
        order.status === 'CANCELLED'
          ? []
          : [{ type: 'OrderCancelled', extra: { reason: order.failureReason ?? 'cancelled' } }],
    });
    return refused ? 'failed' : 'cancelled';
  }

  /**
   * Runs the saga to its end (or until abandoned). Resolves true when this replica holds no
   * lease on it afterwards: another runs it, or it ended (the transition that ends a saga gives
   * its lease up). `placed`: the saga as this replica just recorded it, born leased to it.
   */
  async function drive(orderId: string, placed?: SagaOrder): Promise<boolean> {
    // Another replica runs it (or it just ended): nothing to do here.
    let order = placed ?? (await store.claim(orderId));
    if (!order) return true;
    if (order.sagaState === 'RUNNING') order = await forward(order);
    if (order.sagaState === 'COMPLETED') {
      outcomes?.inc({ outcome: 'confirmed' });
      logger.info({ orderId }, 'saga completed: order confirmed');
    } else if (order.sagaState === 'COMPENSATING') {
      const outcome = await compensate(order);
      outcomes?.inc({ outcome });
      logger.info({ orderId, reason: order.failureReason, outcome }, 'saga compensated: order cancelled');
      return true;
    }
    return order.sagaState === 'COMPLETED';
  }

  /**
   * Runs (or resumes) an order's saga if no other replica holds it; resolves when it ends, is
   * abandoned on stop, or at once when another replica runs it. `placed`: the saga as this
   * replica just recorded it (store.record), so it need not be claimed and read back.
   */
  function run(orderId: string, placed?: SagaOrder): Promise<void> {
    const existing = running.get(orderId);
    if (existing) return existing;
    if (stopping) return Promise.resolve();
    let leaseGiven = false;
    const promise = drive(orderId, placed)
      .then((given) => {
        leaseGiven = given;
      })
      .catch((error: unknown) => {
        if (error instanceof Abandoned) {
          logger.info({ orderId }, 'saga abandoned on stop; another replica or the next start resumes it');
        } else if (error instanceof SagaLeaseLostError) {
          logger.warn({ orderId }, 'saga lease lost: another replica runs it now');
        } else {
          logger.error({ orderId, err: error }, 'saga interrupted; it resumes on the next lease round');
        }
      })
      // Abandoned or interrupted: whoever comes next need not wait for the lease to lapse.
      .finally(() =>
        (leaseGiven ? Promise.resolve() : store.release(orderId))
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
      stopped.abort();
      abort?.abort();
      await leases.stop();
      await Promise.all(running.values());
    },
  };
}
export type SagaRunner = ReturnType<typeof createSagaRunner>;
