-- A tablet back damaged (loans.return_condition) is not handed over again until someone records that it was looked
-- at: on the loan it came back from, who (a staff id), when, and how (domain.DamageCheck: checked and repaired if
-- needed, confirmed when it was made ready; or sent to repair). Null: nobody has yet (or there was nothing to check).
ALTER TABLE loans
    ADD COLUMN damage_checked_at timestamptz,
    ADD COLUMN damage_checked_by text,
    ADD COLUMN damage_check text CHECK (damage_check IN ('checked', 'sent_to_repair')),
    ADD CONSTRAINT loans_damage_check_whole
        CHECK ((damage_checked_at IS NULL) = (damage_checked_by IS NULL)
               AND (damage_checked_at IS NULL) = (damage_check IS NULL)),
    ADD CONSTRAINT loans_damage_check_of_a_damaged_return
        CHECK (damage_check IS NULL OR return_condition = 'damaged');
