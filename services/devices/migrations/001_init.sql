-- The tablet fleet. The devices service is the only writer of a tablet's state.
CREATE TABLE tablets (
    id               uuid PRIMARY KEY,
    serial_number    text NOT NULL UNIQUE,
    model            text NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending_provisioning', 'ready', 'loaned', 'returned',
                                                    'wipe_pending', 'wiped', 'lost', 'stolen', 'in_repair',
                                                    'retired')),
    registered_at    timestamptz NOT NULL,
    registered_by    text NOT NULL,
    state_changed_at timestamptz NOT NULL,
    -- The latest heartbeat (the full history is in heartbeats, for a few days).
    last_seen_at     timestamptz,
    last_used_at     timestamptz,
    battery_percent  integer,
    app_version      text
);
CREATE INDEX tablets_by_state ON tablets (state);

CREATE TABLE accessories (
    tablet_id     uuid NOT NULL REFERENCES tablets (id),
    kind          text NOT NULL CHECK (kind IN ('charger', 'cable', 'case', 'sim', 'manual')),
    serial_number text,
    PRIMARY KEY (tablet_id, kind)
);

-- Every state change: who, when, why.
CREATE TABLE transitions (
    id         bigserial PRIMARY KEY,
    tablet_id  uuid NOT NULL REFERENCES tablets (id),
    action     text NOT NULL,
    from_state text NOT NULL,
    to_state   text NOT NULL,
    at         timestamptz NOT NULL,
    by_staff   text NOT NULL,
    reason     text
);
CREATE INDEX transitions_by_tablet ON transitions (tablet_id, id);

CREATE TABLE loans (
    id                     uuid PRIMARY KEY,
    tablet_id              uuid NOT NULL REFERENCES tablets (id),
    patient_id             uuid NOT NULL,
    token_id               text NOT NULL UNIQUE,   -- the jti of the device token the loan issued
    agreement_signed_at    timestamptz NOT NULL,
    agreement_witnessed_by text NOT NULL,
    accessories            text[] NOT NULL,
    expected_return_on     date NOT NULL,
    loaned_at              timestamptz NOT NULL,
    loaned_by              text NOT NULL,
    ended_at               timestamptz,
    end_kind               text CHECK (end_kind IN ('returned', 'lost', 'stolen')),
    return_channel         text CHECK (return_channel IN ('day_hospital', 'post', 'collected')),
    missing_accessories    text[] NOT NULL DEFAULT '{}',
    -- The start of the silence last reported as tablet.inactive (once per silence).
    inactive_reported_since timestamptz,
    inactive_reason         text,
    CHECK ((ended_at IS NULL) = (end_kind IS NULL))
);
-- At most one open loan per tablet, whatever the requests racing.
CREATE UNIQUE INDEX loans_one_open_per_tablet ON loans (tablet_id) WHERE ended_at IS NULL;
CREATE INDEX loans_by_patient ON loans (patient_id);

CREATE TABLE wipes (
    id        bigserial PRIMARY KEY,
    tablet_id uuid NOT NULL REFERENCES tablets (id),
    method    text NOT NULL CHECK (method IN ('factory_reset', 'mdm_remote_wipe', 'reimaged')),
    proof     text NOT NULL,     -- e.g. the MDM job id or the number of the signed wipe sheet
    wiped_at  timestamptz NOT NULL,
    wiped_by  text NOT NULL
);
CREATE INDEX wipes_by_tablet ON wipes (tablet_id, wiped_at DESC);

-- Heartbeats, kept a few days: (tablet, sent_at) makes a retried heartbeat harmless.
CREATE TABLE heartbeats (
    tablet_id       uuid NOT NULL,
    sent_at         timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    battery_percent integer NOT NULL,
    app_version     text NOT NULL,
    last_used_at    timestamptz,
    PRIMARY KEY (tablet_id, sent_at)
);
CREATE INDEX heartbeats_by_time ON heartbeats (received_at);

-- Chemotherapy sessions (from session.scheduled): a questionnaire is due before each.
CREATE TABLE sessions (
    session_id    uuid PRIMARY KEY,
    patient_id    uuid NOT NULL,
    scheduled_for timestamptz NOT NULL,
    cancelled     boolean NOT NULL DEFAULT false
);
CREATE INDEX sessions_by_patient ON sessions (patient_id, scheduled_for);
