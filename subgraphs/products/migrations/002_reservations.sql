-- Stock held for an order while its saga runs (issue 4, part 4). A reservation's units are
-- counted in products.reserved from HELD until it ends COMMITTED (units leave the stock),
-- RELEASED or EXPIRED (units go back to available). REJECTED ones never held anything: they
-- are kept so that a retry with the same idempotency key gets the same answer.
CREATE TABLE reservations (
  id uuid PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,
  -- Null only for a release that arrived before its reservation (see the store's release).
  order_id uuid,
  status text NOT NULL CHECK (status IN ('HELD', 'COMMITTED', 'RELEASED', 'EXPIRED', 'REJECTED')),
  reason text,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The expiry sweeper's scan: only open reservations, oldest deadline first.
CREATE INDEX reservations_held_expiry_idx ON reservations (expires_at) WHERE status = 'HELD';
CREATE INDEX reservations_order_idx ON reservations (order_id);

CREATE TABLE reservation_items (
  reservation_id uuid NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
  product_id uuid NOT NULL REFERENCES products (id),
  quantity integer NOT NULL CHECK (quantity > 0),
  -- The price when the units were reserved: the order charges this, not a later price.
  unit_price_cents integer NOT NULL CHECK (unit_price_cents >= 0),
  PRIMARY KEY (reservation_id, product_id)
);
CREATE INDEX reservation_items_product_idx ON reservation_items (product_id);
