-- What the saga needs to run (and resume) an order: the caller's idempotency key and the
-- fingerprint of the request it came with, the payment token, what each step learned, and the
-- version of the order's last event (order-events envelopes count per order).
ALTER TABLE orders
  ADD COLUMN idempotency_key text,
  ADD COLUMN request_fingerprint text,
  ADD COLUMN payment_token text,
  ADD COLUMN user_email text,
  ADD COLUMN reservation_id uuid,
  ADD COLUMN payment_id uuid,
  ADD COLUMN event_version integer NOT NULL DEFAULT 0;

-- The same key from the same user is the same order, even when two calls race.
CREATE UNIQUE INDEX orders_user_idempotency_key_idx ON orders (user_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

-- Sagas to resume on start.
CREATE INDEX orders_in_flight_idx ON orders (seq) WHERE saga_state IN ('RUNNING', 'COMPENSATING');
