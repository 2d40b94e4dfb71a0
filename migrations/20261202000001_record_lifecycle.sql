-- The record lifecycle (docs/api.md §11): listing a project's submissions,
-- correcting them (PATCH) and erasing them (DELETE).

-- Erasure state of a row. `erased_groups` names what was erased (`data`,
-- `email`, `userid`, `id_image`, `selfie_image`); `deleted_at` is set by a full
-- DELETE. `version` counts the corrections applied, `updated_at` is the last.
-- Constant defaults: catalogue-only changes, no table rewrite.
ALTER TABLE submissions
    ADD COLUMN deleted_at    timestamptz,
    ADD COLUMN updated_at    timestamptz,
    ADD COLUMN version       integer NOT NULL DEFAULT 0,
    ADD COLUMN erased_groups text[]  NOT NULL DEFAULT '{}';

-- An accepted row had to hold the required fields. Erasure removes them, so the
-- rule now holds until something was erased. The old check was created unnamed;
-- it is found by what it says.
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'submissions'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%full_name IS NOT NULL%'
    LOOP
        EXECUTE format('ALTER TABLE submissions DROP CONSTRAINT %I', name);
    END LOOP;
END $$;
ALTER TABLE submissions ADD CONSTRAINT submissions_required_fields CHECK (
    status = 'rejected'
    OR cardinality(erased_groups) > 0
    OR (admin IS NOT NULL AND email IS NOT NULL AND full_name IS NOT NULL
        AND birth_date IS NOT NULL AND kyc_status IS NOT NULL)
) NOT VALID;

-- The listing: a project's stored submissions newest first, by the creation
-- time to the millisecond (what the page cursor carries) and then the id. The
-- expression is immutable (a fixed zone), so it can be indexed; queries use it
-- verbatim. Partial: rejected rows are never listed and cost nothing here.
CREATE INDEX submissions_list_idx ON submissions
    (project_id, date_trunc('milliseconds', received_at AT TIME ZONE 'UTC') DESC, id DESC)
    WHERE status = 'accepted';

-- The listing filtered by userid, and `kycctl submission erase --userid`.
CREATE INDEX submissions_userid_idx ON submissions (project_id, userid)
    WHERE status = 'accepted' AND userid IS NOT NULL;

-- Ids erased by DELETE, stored or not: a create of such an id still in the
-- queue, redelivered or replayed from the dead letters is never stored. Keyed by
-- project too, so another project's DELETE of an id cannot touch this one's.
CREATE TABLE submission_tombstones (
    id          uuid        NOT NULL,
    project_id  uuid        NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, project_id)
);

-- What each correction replaced: who (the admin), when, which fields, and the
-- previous values. Previous values of sealed fields are sealed like the columns
-- they came from (`previous_sealed`, a JSON object sealed under the data key
-- with the submission id and the version bound). Erased with the submission.
CREATE TABLE submission_history (
    seq              bigserial   PRIMARY KEY,
    submission_id    uuid        NOT NULL,
    project_id       uuid        NOT NULL,
    version          integer     NOT NULL,
    admin            text        NOT NULL,
    changed_at       timestamptz NOT NULL DEFAULT now(),
    fields           text[]      NOT NULL,
    previous         jsonb       NOT NULL,
    previous_sealed  bytea,
    pii_key_id       text,
    UNIQUE (submission_id, version)
);

-- Events of the lifecycle (`submission.updated`, `submission.deleted`), written
-- in the transaction of the change and published after commit by the intake's
-- relay, which marks them sent once the broker confirmed them. A crash between
-- commit and publish leaves the row unsent; the relay (of any intake) sends it.
CREATE TABLE event_outbox (
    seq          bigserial   PRIMARY KEY,
    routing_key  text        NOT NULL,
    body         jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX event_outbox_unsent_idx ON event_outbox (seq) WHERE sent_at IS NULL;
