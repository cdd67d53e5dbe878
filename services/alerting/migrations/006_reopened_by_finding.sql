-- An alert that a new finding sent back to "open" after a nurse had taken it: when that happened (it has waited
-- for a nurse since then: the triage order, `waiting_seconds` and the dashboard's "Attente" count from there, as
-- its service-level clock does) and who had it (the dashboard says "Rouverte à 16:52 (était prise par …)").
ALTER TABLE alerts ADD COLUMN reopened_by_finding_at timestamptz;
ALTER TABLE alerts ADD COLUMN previously_acknowledged_by text;
