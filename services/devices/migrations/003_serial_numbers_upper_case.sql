-- Serial numbers are not case-significant: 'r52w70abcde' and 'R52W70ABCDE' are one tablet. The API keeps them in
-- upper case (domain.SerialNumber); from here on the database refuses any other form, so that the UNIQUE on
-- tablets.serial_number cannot be got round by case, whoever writes (a CHECK plus the existing UNIQUE: every
-- stored serial number is its own upper case, so two that differ only by case cannot both be stored).
--
-- Tablets registered before this, whose serial numbers differ only by case, are NOT merged: which row is the
-- tablet (loans, wipes, history) is for a person to decide. The migration then fails, changing nothing, with the
-- list of them (each serial number as stored, with the tablet's id and state), and the service does not start
-- until an operator has given each duplicate a serial number of its own, e.g.
--   UPDATE devices.tablets SET serial_number = 'R52W70ABCDE-DUPLICATE' WHERE id = '…';
-- (and retired it, if it is no tablet of the fleet); the migration runs again at the next start.
DO $$
DECLARE
    clashes text;
BEGIN
    SELECT string_agg(canonical || ': ' || tablets, '; ' ORDER BY canonical)
      INTO clashes
      FROM (SELECT upper(serial_number) AS canonical,
                   string_agg(format('%s (tablet %s, %s)', serial_number, id, state), ', '
                              ORDER BY serial_number, id) AS tablets
              FROM tablets
             GROUP BY upper(serial_number)
            HAVING count(*) > 1) AS duplicates;
    IF clashes IS NOT NULL THEN
        RAISE EXCEPTION 'Tablets whose serial numbers differ only by case (one serial number, kept in upper case): %',
            clashes
            USING HINT = 'Nothing was changed. Decide which row is the tablet; give each other row a serial number of '
                         'its own (e.g. with a -DUPLICATE suffix, then retire it), then start the service again.';
    END IF;
END
$$;

UPDATE tablets SET serial_number = upper(serial_number) WHERE serial_number <> upper(serial_number);
ALTER TABLE tablets ADD CONSTRAINT tablets_serial_number_upper_case CHECK (serial_number = upper(serial_number));

-- An accessory's serial number is neither unique nor looked up, but it is the same kind of value: one form too.
UPDATE accessories SET serial_number = upper(serial_number) WHERE serial_number <> upper(serial_number);
ALTER TABLE accessories ADD CONSTRAINT accessories_serial_number_upper_case
    CHECK (serial_number = upper(serial_number));
