-- The lease of the replica running a saga: only the owner records transitions, and it renews
-- the lease while it runs. Another replica takes the saga over only once the lease lapsed (its
-- owner was killed or hangs), so two replicas never run one saga at once. Times are the
-- database's clock, the one clock every replica shares.
ALTER TABLE orders
  ADD COLUMN saga_owner text,
  ADD COLUMN saga_lease_until timestamptz;
