-- The nurse who took a submission's answers by phone (questionnaire.submitted recorded_by, her staff id); NULL for
-- a tablet's answers.
ALTER TABLE scores ADD COLUMN recorded_by text;
