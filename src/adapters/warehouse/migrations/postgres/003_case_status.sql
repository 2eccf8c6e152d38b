-- paystream warehouse, postgres: migration 003 (case status history).
-- fraud_cases gets who set the current status and when (NULL while never changed), and the
-- status history without analysts' notes (free text may hold personal data). Rows filed
-- before this migration had no status change synced: their history starts empty.

ALTER TABLE fraud_cases ADD COLUMN status_by text;
ALTER TABLE fraud_cases ADD COLUMN status_at timestamptz;
ALTER TABLE fraud_cases ADD COLUMN status_history jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE fraud_cases ALTER COLUMN status_history DROP DEFAULT;
