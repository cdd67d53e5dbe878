-- Staff members as the people they serve know them: the display name their latest token carried
-- (STAFF_TOKEN_NAME_CLAIM), for the patient's return receipt ("effacées … par Sophie Leroy") beside the ids the
-- wipes hold. Recorded when a fleet manager signs in to the fleet page or records a wipe. Never in events, which
-- carry ids only.
CREATE TABLE staff (
    id           text PRIMARY KEY,
    display_name text,
    last_seen_at timestamptz NOT NULL
);
