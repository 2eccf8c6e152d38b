-- paystream warehouse, duckdb: migration 003 (case status history).
-- fraud_cases gets who set the current status and when (NULL while never changed), and the
-- status history without analysts' notes (free text may hold personal data). Rows filed
-- before this migration had no status change synced: their history starts empty.
-- DuckDB cannot add a NOT NULL column in one step: add it with a default, then constrain it.

ALTER TABLE fraud_cases ADD COLUMN status_by VARCHAR;
ALTER TABLE fraud_cases ADD COLUMN status_at TIMESTAMPTZ;
ALTER TABLE fraud_cases ADD COLUMN status_history JSON DEFAULT '[]';
ALTER TABLE fraud_cases ALTER COLUMN status_history SET NOT NULL;
