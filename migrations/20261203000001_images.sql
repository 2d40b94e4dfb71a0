-- Submission images (docs/api.md "Images"): one row per submission and image
-- kind, pointing at the sealed object in the image store. Written only by the
-- workers, after the intake wrote the object and queued its reference; a row
-- is written only while its submission exists (undeleted), and the object a
-- row replaced is deleted after the commit, so no row points at a missing
-- object. The image itself is never in the database.

CREATE TABLE submission_images (
    submission_id   uuid        NOT NULL,
    project_id      uuid        NOT NULL,
    kind            text        NOT NULL
                    CHECK (kind IN ('idImage', 'idBackImage', 'selfieImage', 'addressImage')),
    -- `images/<uuid>`: random, no personal data.
    object_key      text        NOT NULL UNIQUE,
    -- HMAC-SHA256 of the plain image under a key derived from the data key
    -- (lowercase hex): makes a re-upload of the same image a no-op.
    digest          text        NOT NULL,
    size_bytes      bigint      NOT NULL CHECK (size_bytes > 0),
    content_type    text        NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
    -- The data key the object is sealed under.
    key_id          text        NOT NULL,
    -- When the intake received the upload: an older reference never replaces
    -- a newer image.
    received_at     timestamptz NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (submission_id, kind)
);
