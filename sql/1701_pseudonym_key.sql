-- Issue 17: the secret key of the pseudonyms that erasure and retention write in place of personal data
-- (docs/retention.md). One random 32-byte key per database, made once here and never shown by any command:
-- the same number always becomes the same token (counts of distinct callers stay exact), and without the
-- key a token cannot be turned back into a number by trying every number.
CREATE TABLE pseudonym_key (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key        bytea NOT NULL CHECK (length(key) = 32)
);
INSERT INTO pseudonym_key (key)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
REVOKE ALL ON pseudonym_key FROM PUBLIC;
