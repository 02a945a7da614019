CREATE TABLE notifications (
  -- The id of the event that caused it: one notification per event, however often it arrives.
  id uuid PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  user_id uuid NOT NULL,
  kind text NOT NULL,
  recipient text NOT NULL,
  subject text NOT NULL,
  body text NOT NULL,
  status text NOT NULL CHECK (status IN ('PENDING', 'SENT', 'FAILED')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error text,
  -- Set once its delivery job is on the queue (the dispatcher's outbox marker).
  enqueued_at timestamptz,
  -- A worker holding an unexpired claim is delivering it; a duplicate job waits and then finds SENT.
  claimed_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz
);
CREATE INDEX notifications_user_seq_idx ON notifications (user_id, seq DESC);
CREATE INDEX notifications_unenqueued_idx ON notifications (seq) WHERE enqueued_at IS NULL;
