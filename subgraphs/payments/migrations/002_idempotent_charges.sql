-- Charges and refunds are idempotent by the caller's key (issue 4, part 5).

-- One row per charge idempotency key, written BEFORE the provider is called: the unique key is
-- what makes two racing calls charge once (the loser waits for the winner's result). The
-- payments table only holds finished outcomes, so its status CHECK and the public
-- PaymentStatus enum stay as API.md says.
CREATE TABLE charge_requests (
  idempotency_key text PRIMARY KEY,
  -- One charge per order: a second key for the same order is a conflict, not a second charge.
  order_id uuid NOT NULL UNIQUE,
  -- sha256 of (orderId, userId, amountCents, token): "same key, other parameters" is detected
  -- without keeping the card token itself.
  fingerprint text NOT NULL,
  -- Set once the outcome is stored.
  payment_id uuid REFERENCES payments (id),
  -- While unfinished, the owner's lease: past it (the owner crashed), another call takes over,
  -- which is safe because every provider call of a charge uses the same provider key.
  claimed_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE payments
  ADD COLUMN idempotency_key text UNIQUE,
  -- Why a payment is DECLINED or FAILED (the saga's failureReason).
  ADD COLUMN reason text,
  -- The processor's charge, needed to refund it; null for payments recorded without one (demo data).
  ADD COLUMN provider_charge_id text;

CREATE TABLE refund_requests (
  idempotency_key text PRIMARY KEY,
  payment_id uuid NOT NULL REFERENCES payments (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
