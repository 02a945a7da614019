-- Each order as the order-events seen so far describe it. Its status is set by the event with the
-- highest version: a duplicate or a stale event (an OrderPlaced after its OrderConfirmed) changes
-- nothing. The metrics are aggregated from these rows when read, so they cannot drift from them.
CREATE TABLE order_facts (
  order_id uuid PRIMARY KEY,
  user_id uuid NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
  total_cents integer NOT NULL CHECK (total_cents >= 0),
  placed_at timestamptz NOT NULL,
  -- When the order became CONFIRMED or CANCELLED (that event's occurredAt); revenue counts on this day.
  ended_at timestamptz,
  -- The version (order-events envelope) of the event that set the status.
  version integer NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_facts_confirmed_idx ON order_facts (ended_at) WHERE status = 'CONFIRMED';

CREATE TABLE order_fact_items (
  order_id uuid NOT NULL REFERENCES order_facts (order_id) ON DELETE CASCADE,
  position integer NOT NULL,
  product_id uuid NOT NULL,
  quantity integer NOT NULL CHECK (quantity > 0),
  unit_price_cents integer NOT NULL CHECK (unit_price_cents >= 0),
  PRIMARY KEY (order_id, position)
);
CREATE INDEX order_fact_items_product_idx ON order_fact_items (product_id);

-- Bumped in the transaction of every change to order_facts. Replicas each consume some
-- partitions, but all compare this one counter, so every replica's subscribers learn of every
-- change (see createMetricsFeed.ts).
CREATE TABLE metrics_version (
  id integer PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL,
  updated_at timestamptz NOT NULL
);
INSERT INTO metrics_version (id, version, updated_at) VALUES (1, 0, now());
