CREATE TABLE products (
  id uuid PRIMARY KEY,
  -- Creation order, and the key of the products connection's cursors.
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  sku text NOT NULL,
  name text NOT NULL,
  description text,
  price_cents integer NOT NULL CHECK (price_cents >= 0),
  stock integer NOT NULL CHECK (stock >= 0),
  -- Units held by open reservations; the saga's reserve/release keep 0 <= reserved <= stock,
  -- so available (stock - reserved) can never go below zero.
  reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= stock),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX products_sku_key ON products (lower(sku));
