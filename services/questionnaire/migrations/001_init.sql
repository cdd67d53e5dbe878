-- Submissions as received from the tablets, and where each one is in the loop.
CREATE TABLE submissions (
    id                    uuid PRIMARY KEY,
    patient_id            uuid NOT NULL,
    questionnaire_id      text NOT NULL,
    questionnaire_version text NOT NULL,
    answered_by           text NOT NULL CHECK (answered_by IN ('patient', 'relative', 'nurse_phone')),
    authored              timestamptz NOT NULL,
    received_at           timestamptz NOT NULL DEFAULT now(),
    response              jsonb NOT NULL,   -- the FHIR QuestionnaireResponse as posted (for export)
    status                text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'scored', 'seen')),
    scored_at             timestamptz,
    seen_at               timestamptz
);
CREATE INDEX submissions_by_patient ON submissions (patient_id, authored DESC);

CREATE TABLE messages (
    id          uuid PRIMARY KEY,
    patient_id  uuid NOT NULL,
    answered_by text NOT NULL,
    body        text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_by_patient ON messages (patient_id, sent_at DESC);
