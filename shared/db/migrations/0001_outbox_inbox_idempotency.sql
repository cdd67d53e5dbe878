-- Applied in every service's schema before the service's own migrations.

-- Transactional outbox: written in the same transaction as the change it announces.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    id           uuid NOT NULL UNIQUE,          -- CloudEvent id = Nats-Msg-Id
    subject      text NOT NULL,
    body         bytea NOT NULL,                -- the CloudEvent JSON, published verbatim
    headers      jsonb NOT NULL DEFAULT '{}',   -- the originating traceparent/tracestate
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

-- Consumer inbox: one row per (durable consumer, event id), written with the handler's effects.
CREATE TABLE inbox (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Idempotent HTTP ingress: the first response to an Idempotency-Key is replayed to every retry.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status       integer NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
