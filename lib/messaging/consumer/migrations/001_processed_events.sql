-- Events a consumer has applied, written in the same transaction as their effects: a
-- redelivered or replayed event finds its id here and changes nothing.
CREATE TABLE processed_events (
  consumer text NOT NULL,
  event_id uuid NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
