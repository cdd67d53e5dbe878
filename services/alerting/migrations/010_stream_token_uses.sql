-- The stream tokens that have opened a live stream: each opens one, once, whichever replica it reaches (it travels
-- in a URL, which proxies log and browsers keep). Only the token's id; purged a day after use (a token lives 60 s).
CREATE TABLE stream_token_uses (
    token_id text PRIMARY KEY,
    used_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stream_token_uses_used_at ON stream_token_uses (used_at);
