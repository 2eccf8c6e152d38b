-- paystream warehouse, duckdb: migration 001 (initial schema).
-- Generated from src/adapters/warehouse/schema.ts (renderInitMigration); do not edit once
-- released: change the schema with a new numbered migration instead.

CREATE TABLE transactions (
  transaction_id VARCHAR NOT NULL CHECK (length(transaction_id) > 0),
  account_id VARCHAR NOT NULL CHECK (length(account_id) > 0),
  schema_version INTEGER NOT NULL,
  card_bin VARCHAR NOT NULL,
  card_last4 VARCHAR NOT NULL,
  card_token VARCHAR NOT NULL,
  name_token VARCHAR NOT NULL,
  email_token VARCHAR NOT NULL,
  ip_token VARCHAR NOT NULL,
  device_token VARCHAR NOT NULL,
  amount DECIMAL(18,2) NOT NULL CHECK (amount > 0),
  amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
  currency VARCHAR NOT NULL,
  merchant_id VARCHAR NOT NULL,
  merchant_category VARCHAR NOT NULL,
  country VARCHAR NOT NULL,
  city VARCHAR NOT NULL,
  lat DOUBLE NOT NULL CHECK (lat BETWEEN -90 AND 90),
  lon DOUBLE NOT NULL CHECK (lon BETWEEN -180 AND 180),
  event_time TIMESTAMPTZ NOT NULL,
  event_time_ms BIGINT NOT NULL,
  kafka_partition INTEGER NOT NULL CHECK (kafka_partition >= 0),
  kafka_offset BIGINT NOT NULL CHECK (kafka_offset >= 0),
  processed_at_ms BIGINT NOT NULL,
  is_late BOOLEAN NOT NULL,
  PRIMARY KEY (transaction_id)
);

CREATE TABLE fraud_alerts (
  alert_id VARCHAR NOT NULL CHECK (length(alert_id) > 0),
  rule_id VARCHAR NOT NULL,
  rule_type VARCHAR NOT NULL,
  severity VARCHAR NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  account_id VARCHAR NOT NULL,
  transaction_id VARCHAR NOT NULL,
  event_time TIMESTAMPTZ NOT NULL,
  detected_at TIMESTAMPTZ NOT NULL,
  card_bin VARCHAR,
  card_last4 VARCHAR,
  card_token VARCHAR,
  figures JSON NOT NULL,
  PRIMARY KEY (alert_id)
);
