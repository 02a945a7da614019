CREATE TABLE payments (
  id uuid PRIMARY KEY,
  -- One payment per order; retries are attempts of the same payment.
  order_id uuid NOT NULL UNIQUE,
  -- The order's owner, kept here so "owner or ADMIN" needs no call to orders.
  user_id uuid NOT NULL,
  amount_cents integer NOT NULL CHECK (amount_cents >= 0),
  status text NOT NULL CHECK (status IN ('CAPTURED', 'DECLINED', 'FAILED', 'REFUNDED')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  refunded_cents integer NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
