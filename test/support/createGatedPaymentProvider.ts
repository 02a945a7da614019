import { PRODUCTION_PAYMENT_TIMING } from '../../subgraphs/payments/src/createPaymentProcessing.ts';
import {
  createTestPaymentProvider,
  type TestPaymentProvider,
} from '../../subgraphs/payments/src/createTestPaymentProvider.ts';

/**
 * The built-in test card processor, with charges of chosen amounts kept waiting until the test
 * lets them through: a charge still running inside payments, for as long as the test needs
 * (within payments' own reply timeouts). Its records (captures, refunds) are the processor's.
 */
export function createGatedPaymentProvider() {
  const processor = createTestPaymentProvider({ replyTimeoutMs: PRODUCTION_PAYMENT_TIMING.replyTimeoutMs });
  const gates = new Map<number, { opened: Promise<void>; open: () => void; waiting: number }>();

  const provider: TestPaymentProvider = {
    ...processor,
    async charge(request) {
      const gate = gates.get(request.amountCents);
      if (gate) {
        gate.waiting += 1;
        try {
          // Given up by payments (its reply timeout): this attempt never reaches the processor.
          await new Promise<void>((resolve, reject) => {
            void gate.opened.then(resolve);
            request.signal?.addEventListener('abort', () => reject(new Error('given up by payments')), {
              once: true,
            });
          });
        } finally {
          gate.waiting -= 1;
        }
      }
      return processor.charge(request);
    },
  };

  return {
    provider,
    /** Keeps every charge of `amountCents` waiting before the processor until `open()`. */
    hold(amountCents: number) {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => (open = resolve));
      const gate = { opened, open, waiting: 0 };
      gates.set(amountCents, gate);
      return {
        /** Charge attempts waiting at the gate now. */
        waiting: () => gate.waiting,
        open() {
          gates.delete(amountCents);
          gate.open();
        },
      };
    },
  };
}
