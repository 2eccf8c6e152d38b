-- paystream warehouse, postgres: migration 002 (cases).
-- fraud_alerts.rule_set_version: the rules-log version each alert's rule came from (NULL before).
-- fraud_cases: one row per case (docs/cases.md), upserted by case_id.

ALTER TABLE fraud_alerts ADD COLUMN
  rule_set_version integer
;

CREATE TABLE fraud_cases (
  case_id text NOT NULL CHECK (length(case_id) > 0),
  account_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved_fraud', 'resolved_legitimate')),
  severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  first_seen timestamptz NOT NULL,
  last_seen timestamptz NOT NULL,
  rule_ids jsonb NOT NULL,
  alert_ids jsonb NOT NULL,
  hit_count integer NOT NULL CHECK (hit_count > 0),
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (case_id)
);

CREATE INDEX fraud_cases_account_idx ON fraud_cases (account_id, first_seen);
