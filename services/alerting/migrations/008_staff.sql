-- Staff members as their colleagues see them: the display name their latest token carried (STAFF_TOKEN_NAME_CLAIM),
-- shown beside the ids the alerts hold ("prise par Claire Martin"). Never in events, which carry ids only.
CREATE TABLE staff (
    id text PRIMARY KEY,
    display_name text,
    last_seen_at timestamptz NOT NULL
);
