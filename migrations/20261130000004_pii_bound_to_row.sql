-- Sealed columns now bind the row's id and the column's name as associated data
-- (a ciphertext copied to another row or column does not open), in a format
-- marked by a leading byte. `pii_format` says which format a row's sealed values
-- are in: 0 = before (nothing bound), 1 = bound. Existing rows are 0 and stay
-- readable; `kycctl data-key reseal` rewrites them (and rows sealed under an
-- older data key) under the current key in format 1.
--
-- A constant default makes this a catalogue-only change: no table rewrite.
ALTER TABLE submissions ADD COLUMN pii_format smallint NOT NULL DEFAULT 0;

-- The reseal scan: rows with sealed values not yet in format 1 or under an
-- older key. Partial, so it costs nothing for rows without sealed values.
CREATE INDEX submissions_pii_reseal ON submissions (pii_key_id, pii_format)
    WHERE pii_key_id IS NOT NULL;
