-- paystream warehouse, bigquery: migration 003 (case status history).
-- fraud_cases gets who set the current status and when (NULL while never changed), and the
-- status history without analysts' notes (free text may hold personal data).
-- BigQuery cannot add a REQUIRED column to a table: status_history is NULLABLE here, and
-- every row written from now on carries it (an empty array while never changed). Readers
-- take hits from the row with the most hits and status from the row with the latest
-- status_at, per case_id (docs/cases.md).

ALTER TABLE fraud_cases ADD COLUMN IF NOT EXISTS status_by STRING;
ALTER TABLE fraud_cases ADD COLUMN IF NOT EXISTS status_at TIMESTAMP;
ALTER TABLE fraud_cases ADD COLUMN IF NOT EXISTS status_history JSON;
