-- Chemotherapy sessions (from session.scheduled): the triage list's third sort key, and the dates the
-- patient view aligns the symptom trend on.
CREATE TABLE sessions (
    session_id    uuid PRIMARY KEY,
    patient_id    uuid NOT NULL,
    scheduled_for timestamptz NOT NULL,
    cycle         integer,
    cancelled     boolean NOT NULL DEFAULT false
);
CREATE INDEX sessions_by_patient ON sessions (patient_id, scheduled_for);
