-- A photo uploaded but never named by a message (the patient gave up, the tablet went back before the message
-- went, a bug) is health data the team will never see: the housekeeping deletes it once ORPHAN_PHOTO_DAYS have
-- passed (services/questionnaire/repository.py, PURGE_ORPHAN_PHOTOS). A photo a message names belongs to the
-- patient's record, as the message does, and is never purged.

-- Whether a message names the photo, set by the database in the transaction that stores the message, whichever
-- process (or release, during a rolling deploy) writes it: the purge can never take a photo a committed message
-- shows, and it reads only the photos no message names, not the ones kept for good.
ALTER TABLE photos ADD COLUMN named boolean NOT NULL DEFAULT false;
UPDATE photos SET named = true
WHERE id = ANY(ARRAY(SELECT (jsonb_array_elements_text(photo_ids))::uuid FROM messages WHERE photo_ids <> '[]'));

-- Once per statement (the tablets' group commit writes a batch of messages in one): the ids as one array, so that
-- the photos are found through their primary key whatever size the planner guesses the batch is. The search path
-- is the schema's, whatever the session's.
CREATE FUNCTION photos_named_by_messages() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE photos SET named = true
    WHERE id = ANY(ARRAY(SELECT (jsonb_array_elements_text(photo_ids))::uuid FROM added WHERE photo_ids <> '[]'))
      AND NOT named;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_name_photos AFTER INSERT ON messages REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION photos_named_by_messages();

-- The purge's chunks, oldest first, among the photos no message names only: a photo leaves this index when a
-- message names it, so a round reads the orphans and the week's photos, never the years of photos kept.
CREATE INDEX photos_unnamed ON photos (received_at) WHERE NOT named;
