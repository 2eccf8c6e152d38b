-- paystream warehouse, duckdb: migration 002 (cases).
-- fraud_alerts.rule_set_version: the rules-log version each alert's rule came from (NULL before).
-- fraud_cases: one row per case (docs/cases.md), upserted by case_id.

ALTER TABLE fraud_alerts ADD COLUMN
  rule_set_version INTEGER
;

CREATE TABLE fraud_cases (
  case_id VARCHAR NOT NULL CHECK (length(case_id) > 0),
  account_id VARCHAR NOT NULL,
  status VARCHAR NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved_fraud', 'resolved_legitimate')),
  severity VARCHAR NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  first_seen TIMESTAMPTZ NOT NULL,
  last_seen TIMESTAMPTZ NOT NULL,
  rule_ids JSON NOT NULL,
  alert_ids JSON NOT NULL,
  hit_count INTEGER NOT NULL CHECK (hit_count > 0),
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (case_id)
);
