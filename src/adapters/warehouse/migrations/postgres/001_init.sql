-- paystream warehouse, postgres: migration 001 (initial schema).
-- Generated from src/adapters/warehouse/schema.ts (renderInitMigration); do not edit once
-- released: change the schema with a new numbered migration instead.

CREATE TABLE transactions (
  transaction_id text NOT NULL CHECK (length(transaction_id) > 0),
  account_id text NOT NULL CHECK (length(account_id) > 0),
  schema_version integer NOT NULL,
  card_bin text NOT NULL,
  card_last4 text NOT NULL,
  card_token text NOT NULL,
  name_token text NOT NULL,
  email_token text NOT NULL,
  ip_token text NOT NULL,
  device_token text NOT NULL,
  amount numeric(18,2) NOT NULL CHECK (amount > 0),
  amount_minor bigint NOT NULL CHECK (amount_minor > 0),
  currency text NOT NULL,
  merchant_id text NOT NULL,
  merchant_category text NOT NULL,
  country text NOT NULL,
  city text NOT NULL,
  lat double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
  lon double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
  event_time timestamptz NOT NULL,
  event_time_ms bigint NOT NULL,
  kafka_partition integer NOT NULL CHECK (kafka_partition >= 0),
  kafka_offset bigint NOT NULL CHECK (kafka_offset >= 0),
  processed_at_ms bigint NOT NULL,
  is_late boolean NOT NULL,
  PRIMARY KEY (transaction_id)
);

CREATE TABLE fraud_alerts (
  alert_id text NOT NULL CHECK (length(alert_id) > 0),
  rule_id text NOT NULL,
  rule_type text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  account_id text NOT NULL,
  transaction_id text NOT NULL,
  event_time timestamptz NOT NULL,
  detected_at timestamptz NOT NULL,
  card_bin text,
  card_last4 text,
  card_token text,
  figures jsonb NOT NULL,
  PRIMARY KEY (alert_id)
);

CREATE INDEX transactions_event_time_brin ON transactions USING brin (event_time);
CREATE INDEX fraud_alerts_detected_at_idx ON fraud_alerts (detected_at);
CREATE INDEX fraud_alerts_account_idx ON fraud_alerts (account_id, event_time);
