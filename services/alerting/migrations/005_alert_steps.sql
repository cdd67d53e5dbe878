-- Each step of an alert's life, kept for good: the alerts row holds only its current state, and reopening it
-- clears its outcome, note and handler (CLINICAL.md §4: the patient's prior alerts "and their outcomes").
-- Written in the transaction of the step. The note and the reason are free text: they stay in this table
-- (and the note in alerts.resolution_note while the alert is closed), never in events, logs or spans.
CREATE TABLE alert_steps (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id uuid NOT NULL REFERENCES alerts (id),
    -- reopened_by_finding: a new answer that needs a nurse again put an acknowledged alert back to open.
    action   text NOT NULL CHECK (action IN ('acknowledged', 'resolved', 'reopened', 'reopened_by_finding')),
    at       timestamptz NOT NULL,
    staff_id text,
    outcome  text CHECK (outcome IN ('phone_call', 'advice_given', 'chemo_postponed', 'chemo_cancelled',
                                     'dose_modified', 'urgent_visit', 'sent_to_emergency', 'no_action_needed')),
    note     text,
    reason   text,
    CHECK ((action = 'reopened_by_finding') = (staff_id IS NULL)),
    CHECK ((action = 'resolved') = (outcome IS NOT NULL)),
    CHECK (note IS NULL OR action = 'resolved'),
    CHECK (reason IS NULL OR action = 'reopened')
);
CREATE INDEX alert_steps_by_alert ON alert_steps (alert_id, at, id);

-- The steps the alerts' current columns still tell. A reopen made its nurse the handler, and closing an alert
-- nobody had taken filled the handler with the closer: neither was a step of its own. What earlier reopens
-- cleared is gone.
INSERT INTO alert_steps (alert_id, action, at, staff_id, outcome, note)
SELECT alert_id, action, at, staff_id, outcome, note FROM (
    SELECT id AS alert_id, 'acknowledged' AS action, acknowledged_at AS at, acknowledged_by AS staff_id,
           NULL AS outcome, NULL AS note, 1 AS rank
    FROM alerts
    WHERE acknowledged_by IS NOT NULL AND acknowledged_at IS NOT NULL
      AND NOT (reopened_by IS NOT DISTINCT FROM acknowledged_by AND reopened_at IS NOT DISTINCT FROM acknowledged_at)
      AND NOT (resolved_by IS NOT DISTINCT FROM acknowledged_by AND resolved_at IS NOT DISTINCT FROM acknowledged_at)
    UNION ALL
    SELECT id, 'reopened', reopened_at, reopened_by, NULL, NULL, 2
    FROM alerts WHERE reopened_by IS NOT NULL AND reopened_at IS NOT NULL
    UNION ALL
    SELECT id, 'resolved', resolved_at, resolved_by, outcome, resolution_note, 3
    FROM alerts WHERE status = 'resolved' AND resolved_by IS NOT NULL AND resolved_at IS NOT NULL
) steps
ORDER BY alert_id, at, rank;
