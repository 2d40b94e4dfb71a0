-- API keys move to a table of their own, under a digest that is not the §7
-- envelope key, and a project may hold several keys at once (rotation with a
-- grace period).
--
-- Until now projects.api_key_sha256 held SHA-256(key). That value is exactly the
-- AES-256-GCM key of the client encryption envelope (docs/api.md §7), so a copy
-- of the database decrypted captured enveloped traffic. The lookup digest is now
--
--     sha256('kyc-ingest/api-key-lookup/v1' || sha256(key))
--
-- (crates/store/src/projects.rs, `key_digest`). It is computed from the old
-- column alone, so existing keys keep authenticating without anyone presenting
-- them, and the old column is dropped: after this migration the database holds
-- no envelope key.

CREATE TABLE project_keys (
    -- The lookup digest of the key (32 bytes); the key itself is never stored.
    digest      bytea       PRIMARY KEY CHECK (length(digest) = 32),
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL: valid until rotated. After a rotation with a grace period the old
    -- key's expiry is set; lookups ignore keys whose expiry has passed.
    expires_at  timestamptz
);

CREATE INDEX project_keys_project_idx ON project_keys (project_id);

INSERT INTO project_keys (digest, project_id, created_at)
SELECT sha256(convert_to('kyc-ingest/api-key-lookup/v1', 'UTF8') || api_key_sha256),
       id,
       created_at
FROM projects;

ALTER TABLE projects DROP COLUMN api_key_sha256;
