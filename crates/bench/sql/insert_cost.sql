-- What PostgreSQL spends inserting a million submissions rows, by the order of
-- their ids and by the clauses of the workers' insert. Run in a scratch
-- database holding the migrations (see docs/benchmarks.md, "pipeline,
-- 2026-12-07 (evening)"):
--
--   createdb -h 127.0.0.1 -U postgres insert_cost
--   for f in migrations/*.sql; do psql -h 127.0.0.1 -U postgres -d insert_cost -qf "$f"; done
--   psql -h 127.0.0.1 -U postgres -d insert_cost -f crates/bench/sql/insert_cost.sql
--
-- Each load writes the same million rows (two sealed-size byte values, the
-- required fields and a few more) in 1,000 transactions of 1,000 rows, after a
-- TRUNCATE and a CHECKPOINT; psql's \timing gives each load's time.
-- Scratch tables stage_random and stage_sorted are (re)created.

\set ON_ERROR_STOP on
\timing off
DROP TABLE IF EXISTS stage_random, stage_sorted;
-- Content-derived ids (UUIDv5 of an idempotency key) are uniformly spread, like
-- random ones; UUIDv7 ids grow with time, like sorted ones.
CREATE TABLE stage_random AS
    SELECT gen_random_uuid() AS id, i FROM generate_series(1, 1000000) AS i;
CREATE INDEX ON stage_random (i);
CREATE TABLE stage_sorted AS
    SELECT row_number() OVER (ORDER BY id) AS i, id FROM stage_random;
CREATE INDEX ON stage_sorted (i);

-- Loads `src` with the insert of the workers' fast path (`tail` empty) or with
-- the clauses of their full statement appended.
CREATE OR REPLACE PROCEDURE insert_cost_load(src text, tail text) LANGUAGE plpgsql AS $$
DECLARE b int;
BEGIN
  FOR b IN 0..999 LOOP
    EXECUTE format($q$
      INSERT INTO submissions (id, project_id, status, received_at, admin, email,
        full_name, birth_date, kyc_status, first_name, last_name, id_type,
        issuing_country, nationality, gender, ip_address, identity_number_enc,
        document_number_enc, pii_key_id, pii_format, address_city, address_full, userid)
      SELECT s.id, '0193a5b2-0000-7000-8000-000000000001'::uuid, 'accepted',
        now() + s.i * interval '1 microsecond', 'admin@example.com', 'user@example.com',
        'Jane Example Doe', '1990-01-01', 'approved', 'Jane', 'Doe', 'passport', 'USA',
        'USA', 'female', '192.0.2.1', decode(repeat('ab', 60), 'hex'),
        decode(repeat('cd', 60), 'hex'), 'key-1', 1, 'Springfield',
        '1 Main St, Springfield', 'user-' || s.i
      FROM %I s WHERE s.i > %s AND s.i <= %s
      AND NOT EXISTS (SELECT 1 FROM submission_tombstones z
                      WHERE z.id = s.id
                        AND z.project_id = '0193a5b2-0000-7000-8000-000000000001'::uuid)
      %s$q$, src, b * 1000, (b + 1) * 1000, tail);
    COMMIT;
  END LOOP;
END $$;

\set full 'ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, email = EXCLUDED.email, processed_at = now() WHERE submissions.status = ''rejected'' AND submissions.error_code = ''processing_error'' AND EXCLUDED.status = ''accepted'' AND submissions.project_id = EXCLUDED.project_id AND submissions.deleted_at IS NULL RETURNING id'

-- One round; run the file again for another (the machine's noise needs a few).
\echo 'random ids, the insert alone:'
TRUNCATE submissions; CHECKPOINT;
\timing on
CALL insert_cost_load('stage_random', '');
\timing off
\echo 'random ids, the full statement:'
TRUNCATE submissions; CHECKPOINT;
\timing on
CALL insert_cost_load('stage_random', :'full');
\timing off
\echo 'sorted ids, the insert alone:'
TRUNCATE submissions; CHECKPOINT;
\timing on
CALL insert_cost_load('stage_sorted', '');
\timing off
TRUNCATE submissions;
