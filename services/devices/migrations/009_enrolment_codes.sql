-- A loan's one-time enrolment code (enrolment.py): the short code the tablet exchanges once for its device token, so
-- that the QR code on the fleet manager's screen and a copied link hold no token. One live code per loan (a new code
-- replaces the row: the old one is then unknown). Only its SHA-256 is kept: a copy of this table enrols no tablet.
-- used_key_hash: the hash of the Idempotency-Key of the exchange that spent it, so that the same tablet retrying
-- after a lost answer gets its token again for a short while (enrolment.RETRY_WINDOW), and nobody else does.
CREATE TABLE enrolment_codes (
    loan_id uuid PRIMARY KEY REFERENCES loans (id),
    code_hash bytea NOT NULL UNIQUE CHECK (octet_length(code_hash) = 32),
    made_at timestamptz NOT NULL,
    made_by text NOT NULL,
    expires_at timestamptz NOT NULL CHECK (expires_at > made_at),
    used_at timestamptz,
    used_key_hash bytea,
    CONSTRAINT enrolment_codes_used_whole CHECK ((used_at IS NULL) = (used_key_hash IS NULL))
);
