-- Service levels: when the alert reached its current level (the clock restarts when the level rises),
-- and how far it has been escalated (alert.escalated once per level).
ALTER TABLE alerts ADD COLUMN level_since timestamptz;
UPDATE alerts SET level_since = raised_at;
ALTER TABLE alerts ALTER COLUMN level_since SET NOT NULL;
ALTER TABLE alerts ADD COLUMN escalation_level integer NOT NULL DEFAULT 0 CHECK (escalation_level BETWEEN 0 AND 2);
ALTER TABLE alerts ADD COLUMN escalated_at timestamptz;
-- A resolved alert a nurse reopened (it is hers again; the previous outcome is kept in the audit and the event).
ALTER TABLE alerts ADD COLUMN reopened_by text;
ALTER TABLE alerts ADD COLUMN reopened_at timestamptz;
CREATE INDEX alerts_awaiting ON alerts (level_since) WHERE status = 'open' AND escalation_level < 2;
