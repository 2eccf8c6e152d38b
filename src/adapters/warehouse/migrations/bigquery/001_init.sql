-- paystream warehouse, bigquery: migration 001 (initial schema).
-- Generated from src/adapters/warehouse/schema.ts (renderInitMigration); do not edit once
-- released: change the schema with a new numbered migration instead.
-- Run with the target dataset as the default dataset. CHECK constraints do not exist in
-- BigQuery and primary keys are NOT ENFORCED: dedup is insertId (best effort) + query time.

CREATE TABLE IF NOT EXISTS transactions (
  transaction_id STRING NOT NULL,
  account_id STRING NOT NULL,
  schema_version INT64 NOT NULL,
  card_bin STRING NOT NULL,
  card_last4 STRING NOT NULL,
  card_token STRING NOT NULL,
  name_token STRING NOT NULL,
  email_token STRING NOT NULL,
  ip_token STRING NOT NULL,
  device_token STRING NOT NULL,
  amount NUMERIC(18,2) NOT NULL,
  amount_minor INT64 NOT NULL,
  currency STRING NOT NULL,
  merchant_id STRING NOT NULL,
  merchant_category STRING NOT NULL,
  country STRING NOT NULL,
  city STRING NOT NULL,
  lat FLOAT64 NOT NULL,
  lon FLOAT64 NOT NULL,
  event_time TIMESTAMP NOT NULL,
  event_time_ms INT64 NOT NULL,
  kafka_partition INT64 NOT NULL,
  kafka_offset INT64 NOT NULL,
  processed_at_ms INT64 NOT NULL,
  is_late BOOL NOT NULL,
  PRIMARY KEY (transaction_id) NOT ENFORCED
)
PARTITION BY DATE(event_time)
CLUSTER BY account_id;

CREATE TABLE IF NOT EXISTS fraud_alerts (
  alert_id STRING NOT NULL,
  rule_id STRING NOT NULL,
  rule_type STRING NOT NULL,
  severity STRING NOT NULL,
  account_id STRING NOT NULL,
  transaction_id STRING NOT NULL,
  event_time TIMESTAMP NOT NULL,
  detected_at TIMESTAMP NOT NULL,
  card_bin STRING,
  card_last4 STRING,
  card_token STRING,
  figures JSON NOT NULL,
  PRIMARY KEY (alert_id) NOT ENFORCED
)
PARTITION BY DATE(event_time)
CLUSTER BY account_id;
