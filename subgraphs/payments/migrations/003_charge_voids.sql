-- Voiding a charge by its idempotency key (issue 4: the saga compensating a charge it never heard
-- back from). A finished capture is refunded at once; a charge still running under the key is
-- refunded as soon as its outcome is stored (voided_at is read in that transaction); a key that
-- nothing has been charged under yet gets a marker row (fingerprint NULL), so a charge arriving
-- later is refused before it reaches the processor: products' "released before reserved", for
-- money.
ALTER TABLE charge_requests
  ADD COLUMN voided_at timestamptz,
  ALTER COLUMN fingerprint DROP NOT NULL;
