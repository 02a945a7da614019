-- The transactional outbox: events written in the same transaction as the state they describe,
-- published to the event stream by the relay. `id` is the publish order.
CREATE TABLE outbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id uuid NOT NULL UNIQUE,
  topic text NOT NULL,
  -- The message key: every event of one aggregate goes to one partition, in order.
  aggregate_id text NOT NULL,
  event_type text NOT NULL,
  -- json, not jsonb: the envelope is published byte for byte as it was written.
  envelope json NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- One relay publishes at a time (per service schema): whoever holds an unexpired lease.
CREATE TABLE outbox_lease (
  id integer PRIMARY KEY CHECK (id = 1),
  holder text NOT NULL,
  expires_at timestamptz NOT NULL
);
