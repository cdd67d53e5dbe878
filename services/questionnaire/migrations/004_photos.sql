-- Photos a patient sends the team, re-encoded on receipt (services/questionnaire/photos.py: a JPEG of the pixels
-- only, no metadata, at most 2048 px on its long side: 300 to 700 kB). In the database beside the messages that
-- name them: a patient sends a few a week, a ward's year of them is a few GB, and a photo is then backed up,
-- purged and access-controlled with the rest of the patient's data.
CREATE TABLE photos (
    id          uuid PRIMARY KEY,
    patient_id  uuid NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    jpeg        bytea NOT NULL
);
CREATE INDEX photos_by_patient ON photos (patient_id, received_at DESC);
-- The photos a message shows (ids in the photos table, the sender's own): a JSON array, as the tablets' group
-- commit writes its rows from one array per column, and an array of arrays would be two-dimensional.
ALTER TABLE messages ADD COLUMN photo_ids jsonb NOT NULL DEFAULT '[]';
