-- The tablet's condition as it came back (domain.TabletCondition), and what is worn or damaged: checked at the desk,
-- printed on the patient's receipt, and what the next loan of the tablet needs to know. Null: not recorded (every
-- return before this, and a return recorded without it).
ALTER TABLE loans
    ADD COLUMN return_condition text CHECK (return_condition IN ('good', 'worn', 'damaged')),
    ADD COLUMN return_condition_note text CHECK (char_length(return_condition_note) BETWEEN 1 AND 200),
    ADD CONSTRAINT loans_condition_note_with_condition
        CHECK (return_condition_note IS NULL OR return_condition IS NOT NULL);
