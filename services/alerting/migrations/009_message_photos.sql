-- The photos a patient's message shows (their ids: the photos stay in the questionnaire service, GET /v1/photos/{id}).
ALTER TABLE messages ADD COLUMN photo_ids uuid[] NOT NULL DEFAULT '{}';
