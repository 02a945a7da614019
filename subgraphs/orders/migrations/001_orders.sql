CREATE TABLE orders (
  id uuid PRIMARY KEY,
  -- Creation order, and the key of the User.orders connection's cursors.
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  user_id uuid NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
  failure_reason text,
  total_cents integer NOT NULL CHECK (total_cents >= 0),
  saga_state text NOT NULL CHECK (saga_state IN ('RUNNING', 'COMPLETED', 'COMPENSATING', 'COMPENSATED', 'FAILED')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_seq_idx ON orders (user_id, seq);

CREATE TABLE order_items (
  order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  position integer NOT NULL,
  product_id uuid NOT NULL,
  quantity integer NOT NULL CHECK (quantity > 0),
  unit_price_cents integer NOT NULL CHECK (unit_price_cents >= 0),
  PRIMARY KEY (order_id, position)
);

-- The saga's step log: one row per step, in execution order.
CREATE TABLE saga_steps (
  order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  position integer NOT NULL,
  name text NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'COMPENSATED', 'SKIPPED')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  error text,
  started_at timestamptz,
  finished_at timestamptz,
  PRIMARY KEY (order_id, position)
);
