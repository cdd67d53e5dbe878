-- When each session's plan was made (the session.scheduled event's time): a plan older than the one stored
-- (redelivered after a newer one, or applied by another replica a moment later) changes nothing.
ALTER TABLE sessions ADD COLUMN planned_at timestamptz NOT NULL DEFAULT '-infinity';
