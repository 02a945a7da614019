CREATE TABLE users (
  id uuid PRIMARY KEY,
  -- Stored as typed; uniqueness is on the lowercased form so "A@x.io" and "a@x.io" are one account.
  email text NOT NULL,
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('CUSTOMER', 'ADMIN')),
  password_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
