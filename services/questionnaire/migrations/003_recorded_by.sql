-- Who entered a submission a nurse took by phone (her staff id, the token subject); NULL for a tablet's.
ALTER TABLE submissions ADD COLUMN recorded_by text CHECK (recorded_by IS NULL OR answered_by = 'nurse_phone');
