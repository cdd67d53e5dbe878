-- The housekeeping purge deletes in chunks, oldest first (shared.db.housekeeping): each chunk finds its rows
-- through one of these, so that it reads what it deletes and not the table.

-- Partial: a row is written unpublished, so the outbox's INSERT adds nothing to it; the relay's UPDATE that marks a
-- row published adds one entry (an UPDATE of published_at already leaves HOT out, for outbox_pending's predicate).
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- By consumer first: each consumer keeps its rows as long as the stream it reads requires.
CREATE INDEX inbox_processed ON inbox (consumer, processed_at);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
