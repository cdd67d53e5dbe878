-- Device tokens that stopped working (tablet returned, lost or stolen), by token id (jti).
-- Every process of the service keeps the list in memory and polls for the recent rows.
CREATE TABLE revoked_tokens (
    token_id   text PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    reason     text NOT NULL
);
CREATE INDEX revoked_tokens_by_time ON revoked_tokens (revoked_at);
