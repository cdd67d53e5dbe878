-- When a nurse first took (or closed) an alert holding the message: the tablet shows the patient it was read.
ALTER TABLE messages ADD COLUMN seen_at timestamptz;
