-- Every scored submission (the trend, and "the previous submission" for the worsening rule).
CREATE TABLE scores (
    submission_id uuid PRIMARY KEY,
    patient_id    uuid NOT NULL,
    questionnaire_id text NOT NULL,
    authored      timestamptz NOT NULL,
    answered_by   text NOT NULL,
    answers       jsonb NOT NULL,     -- the normalised answers (terms, red flags, ecog)
    grades        jsonb NOT NULL,     -- term -> composite grade 0-3
    ecog          integer,
    level         text NOT NULL CHECK (level IN ('red', 'orange', 'none')),
    alert_id      uuid,
    rule_set      text NOT NULL,
    scored_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scores_by_patient ON scores (patient_id, authored DESC);

CREATE TABLE messages (
    id          uuid PRIMARY KEY,
    patient_id  uuid NOT NULL,
    answered_by text NOT NULL,
    body        text NOT NULL,
    sent_at     timestamptz NOT NULL,
    alert_id    uuid
);
CREATE INDEX messages_by_patient ON messages (patient_id, sent_at DESC);

CREATE TABLE alerts (
    id              uuid PRIMARY KEY,
    patient_id      uuid NOT NULL,
    level           text NOT NULL CHECK (level IN ('red', 'orange')),
    status          text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    reasons         jsonb NOT NULL,
    answered_by     text NOT NULL,
    submission_ids  uuid[] NOT NULL DEFAULT '{}',
    message_ids     uuid[] NOT NULL DEFAULT '{}',
    rule_set        text NOT NULL,
    raised_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_by     text,
    resolved_at     timestamptz,
    outcome         text CHECK (outcome IN ('phone_call', 'advice_given', 'chemo_postponed', 'chemo_cancelled',
                                            'dose_modified', 'urgent_visit', 'sent_to_emergency',
                                            'no_action_needed')),
    resolution_note text,
    CHECK ((status = 'resolved') = (outcome IS NOT NULL))
);
CREATE INDEX alerts_active_by_patient ON alerts (patient_id) WHERE status <> 'resolved';
CREATE INDEX alerts_triage ON alerts (status, level, raised_at);

-- A nurse's "this is expected for this patient" (up to 30 days): findings at or below it do not alert.
CREATE TABLE expected_levels (
    patient_id uuid NOT NULL,
    term       text NOT NULL,
    grade      integer NOT NULL CHECK (grade BETWEEN 0 AND 3),
    until      timestamptz NOT NULL,
    set_by     text NOT NULL,
    set_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, term)
);
