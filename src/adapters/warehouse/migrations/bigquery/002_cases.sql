-- paystream warehouse, bigquery: migration 002 (cases).
-- fraud_alerts.rule_set_version: the rules-log version each alert's rule came from (NULL before).
-- fraud_cases: one row per case state (docs/cases.md).
-- BigQuery cannot upsert a streamed row: fraud_cases is an append log of case states;
-- the latest per case_id is the one with the most hits, then the latest updated_at.

ALTER TABLE fraud_alerts ADD COLUMN IF NOT EXISTS
  rule_set_version INT64
;

CREATE TABLE IF NOT EXISTS fraud_cases (
  case_id STRING NOT NULL,
  account_id STRING NOT NULL,
  status STRING NOT NULL,
  severity STRING NOT NULL,
  first_seen TIMESTAMP NOT NULL,
  last_seen TIMESTAMP NOT NULL,
  rule_ids JSON NOT NULL,
  alert_ids JSON NOT NULL,
  hit_count INT64 NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  PRIMARY KEY (case_id) NOT ENFORCED
)
PARTITION BY DATE(first_seen)
CLUSTER BY account_id;
