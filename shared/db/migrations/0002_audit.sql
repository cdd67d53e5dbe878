-- Every staff read or write of patient data (who, what, when). Ids and codes only.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    roles       text[] NOT NULL,
    action      text NOT NULL,
    resource    text NOT NULL,
    patient_id  uuid
);
CREATE INDEX audit_log_by_patient ON audit_log (patient_id, at DESC);
CREATE INDEX audit_log_by_actor ON audit_log (actor, at DESC);
