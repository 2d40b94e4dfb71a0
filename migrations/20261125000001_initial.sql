-- The initial schema of kyc-ingest.
--
-- Three tables: projects (who may submit), their admins (who may be named in a
-- submission's `admin` field), and submissions (one row per processed submission,
-- accepted or rejected). Only workers write submissions; the intake only reads
-- projects and admins.

-- A project is a tenant. Its API key is never stored: only the SHA-256 digest, which
-- is what the intake and the workers look up (the digest of a 256-bit random key
-- cannot be reversed, and looking it up by an index leaks nothing useful).
CREATE TABLE projects (
    id                   uuid        PRIMARY KEY,
    name                 text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    api_key_sha256       bytea       NOT NULL UNIQUE CHECK (length(api_key_sha256) = 32),
    -- Spec §7: a project may refuse plain bodies.
    encryption_required  boolean     NOT NULL DEFAULT false,
    -- A disabled project's key still authenticates, but submissions are refused
    -- with `invalid_project` (spec §1).
    disabled_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- Administrators of a project, by e-mail. Stored lower-case: addresses compare
-- case-insensitively.
CREATE TABLE project_admins (
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email       text        NOT NULL CHECK (email = lower(email)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, email)
);

-- One row per processed submission. The primary key is the submission id the
-- client was given (UUIDv7, or UUIDv5 of project and idempotency key), so a
-- redelivered or re-sent message hits `ON CONFLICT (id) DO NOTHING` and is stored
-- once.
--
-- A rejected submission keeps only its outcome: its fields may be unparseable and
-- are personal data we have no reason to hold.
CREATE TABLE submissions (
    id                   uuid        PRIMARY KEY,
    project_id           uuid        NOT NULL REFERENCES projects (id),
    status               text        NOT NULL CHECK (status IN ('accepted', 'rejected')),
    error_code           text,
    message              text,
    idempotency_key      text,
    received_at          timestamptz NOT NULL,
    processed_at         timestamptz NOT NULL DEFAULT now(),

    -- The contract's fields (spec §2), typed. NULL for rejected rows and for
    -- absent optional fields.
    admin                text,
    email                text,
    full_name            text,
    birth_date           date,
    kyc_status           text,
    first_name           text,
    last_name            text,
    id_type              text,
    issuing_country      char(3),
    nationality          char(3),
    gender               text,
    issue_date           date,
    expire_date          date,
    ip_address           inet,
    -- Sensitive numbers, AES-256-GCM under the service data key named by
    -- pii_key_id (nonce ‖ ciphertext ‖ tag), so keys can rotate row by row.
    identity_number_enc  bytea,
    document_number_enc  bytea,
    pii_key_id           text,
    address_city         text,
    address_country      text,
    address_state        text,
    address_street       text,
    address_full         text,
    cf1                  text,
    cf2                  text,
    cf3                  text,
    userid               text,

    CHECK ((status = 'rejected') = (error_code IS NOT NULL)),
    CHECK (status = 'rejected' OR (admin IS NOT NULL AND email IS NOT NULL
                                   AND full_name IS NOT NULL AND birth_date IS NOT NULL
                                   AND kyc_status IS NOT NULL))
);

-- Results are read per project (spec §6) and listed per project by time.
CREATE INDEX submissions_project_received_idx ON submissions (project_id, received_at);
