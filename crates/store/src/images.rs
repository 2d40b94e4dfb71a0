//! `submission_images`: which sealed object in the image store holds each image
//! of a submission (`docs/api.md`, "Images"). The worker writes a row only while
//! its submission exists, under a lock shared with erasure, and tells the caller
//! which object the row replaced so that it is deleted after the commit.

use crate::{Store, StoreError};
use kyc_core::wire::{ImageKind, ImageReferenceV1};
use time::OffsetDateTime;
use uuid::Uuid;

/// One stored image, as its row describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// Which image.
    pub kind: ImageKind,
    /// Where its sealed object lies.
    pub object_key: String,
    /// The keyed digest of the plain image.
    pub digest: String,
    /// `image/jpeg` or `image/png`.
    pub content_type: String,
    /// The data key it is sealed under.
    pub key_id: String,
}

/// What recording a reference came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The row now points at the reference's object; `replaced` is the object
    /// of the row it replaced (to delete after the commit), if another.
    Stored {
        /// The replaced object, if any and not the same.
        replaced: Option<String>,
        /// When the row was committed.
        at: OffsetDateTime,
    },
    /// The row already points at this very object (a redelivery).
    AlreadyStored {
        /// When the check ran.
        at: OffsetDateTime,
    },
    /// A newer image of the kind is stored; the reference's object is unused.
    Superseded,
    /// The submission is not stored (erased meanwhile, or never there): nothing
    /// recorded; the reference's object is unused.
    NoSubmission,
}

fn kind_of(name: &str) -> Result<ImageKind, StoreError> {
    ImageKind::parse(name).ok_or(StoreError::NotFound("image kind"))
}

impl Store {
    /// The stored images (kind → digest) of an undeleted, accepted submission of
    /// `project`; `None` when there is no such submission (unknown, another
    /// project's, rejected, erased: the caller cannot tell them apart).
    pub async fn image_upload_target(
        &self,
        project: Uuid,
        submission: Uuid,
    ) -> Result<Option<Vec<(ImageKind, String)>>, StoreError> {
        // One round trip: the submission by its primary key alone, its images
        // joined (none: one row of NULLs). The project and status are checked
        // here: with `project_id` in the WHERE clause, a plan made while the
        // table's statistics were stale (right after a bulk load) walked the
        // project's whole `(project_id, received_at)` index, ~0.4 ms per upload.
        let rows: Vec<(Uuid, bool, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT s.project_id, s.status = 'accepted' AND s.deleted_at IS NULL, i.kind, i.digest
             FROM submissions s LEFT JOIN submission_images i ON i.submission_id = s.id
             WHERE s.id = $1",
        )
        .bind(submission)
        .fetch_all(self.pool())
        .await?;
        match rows.first() {
            Some((owner, true, _, _)) if *owner == project => {}
            _ => return Ok(None),
        }
        rows.into_iter()
            .filter_map(|(_, _, kind, digest)| kind.zip(digest))
            .map(|(kind, digest)| Ok((kind_of(&kind)?, digest)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Records `reference` (add or overwrite its kind) if its submission is
    /// stored and undeleted, in one transaction that holds the submission row
    /// against a concurrent erasure.
    pub async fn record_image(&self, reference: &ImageReferenceV1) -> Result<Recorded, StoreError> {
        let mut tx = self.pool().begin().await?;
        let at: OffsetDateTime = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        // FOR NO KEY UPDATE: an erasure (an UPDATE of this row) waits for this
        // transaction, and one committed before it is seen here; and two
        // references of one submission (several workers, or one worker's
        // concurrent handling) take turns, so that when neither finds a row of
        // the kind yet, the second still sees the first's and keeps the newer.
        // By the primary key alone (see `image_upload_target`).
        let row: Option<(Uuid, bool)> = sqlx::query_as(
            "SELECT project_id, deleted_at IS NULL FROM submissions
             WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(reference.submission_id)
        .fetch_optional(&mut *tx)
        .await?;
        if row != Some((reference.project_id, true)) {
            tx.commit().await?;
            return Ok(Recorded::NoSubmission);
        }
        let current: Option<(String, OffsetDateTime)> = sqlx::query_as(
            "SELECT object_key, received_at FROM submission_images
             WHERE submission_id = $1 AND kind = $2 FOR UPDATE",
        )
        .bind(reference.submission_id)
        .bind(reference.kind.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        match &current {
            Some((key, _)) if *key == reference.object_key => {
                tx.commit().await?;
                return Ok(Recorded::AlreadyStored { at });
            }
            Some((_, received)) if *received > reference.received_at => {
                tx.commit().await?;
                return Ok(Recorded::Superseded);
            }
            _ => {}
        }
        sqlx::query(
            "INSERT INTO submission_images
               (submission_id, project_id, kind, object_key, digest, size_bytes, content_type, key_id, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (submission_id, kind) DO UPDATE SET
               object_key = EXCLUDED.object_key, digest = EXCLUDED.digest,
               size_bytes = EXCLUDED.size_bytes, content_type = EXCLUDED.content_type,
               key_id = EXCLUDED.key_id, received_at = EXCLUDED.received_at, stored_at = now()",
        )
        .bind(reference.submission_id)
        .bind(reference.project_id)
        .bind(reference.kind.as_str())
        .bind(&reference.object_key)
        .bind(&reference.digest)
        .bind(i64::try_from(reference.size).unwrap_or(i64::MAX))
        .bind(&reference.content_type)
        .bind(&reference.key_id)
        .bind(reference.received_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Recorded::Stored {
            replaced: current.map(|(key, _)| key),
            at,
        })
    }

    /// The image of `kind` of an undeleted submission of `project`.
    pub async fn stored_image(
        &self,
        project: Uuid,
        submission: Uuid,
        kind: ImageKind,
    ) -> Result<Option<StoredImage>, StoreError> {
        let row: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT i.object_key, i.digest, i.content_type, i.key_id
             FROM submission_images i JOIN submissions s ON s.id = i.submission_id
             WHERE i.submission_id = $1 AND i.kind = $2
               AND s.project_id = $3 AND s.deleted_at IS NULL",
        )
        .bind(submission)
        .bind(kind.as_str())
        .bind(project)
        .fetch_optional(self.pool())
        .await?;
        Ok(
            row.map(|(object_key, digest, content_type, key_id)| StoredImage {
                kind,
                object_key,
                digest,
                content_type,
                key_id,
            }),
        )
    }

    /// The kinds of image stored for a submission, in the API's order.
    pub async fn image_kinds(&self, submission: Uuid) -> Result<Vec<ImageKind>, StoreError> {
        let kinds: Vec<(String,)> =
            sqlx::query_as("SELECT kind FROM submission_images WHERE submission_id = $1")
                .bind(submission)
                .fetch_all(self.pool())
                .await?;
        let mut kinds = kinds
            .into_iter()
            .map(|(k,)| kind_of(&k))
            .collect::<Result<Vec<_>, _>>()?;
        kinds.sort();
        Ok(kinds)
    }

    /// Every object key a row references (for `kycctl images gc`).
    pub async fn referenced_image_objects(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT object_key FROM submission_images")
                .fetch_all(self.pool())
                .await?,
        )
    }
}

/// Deletes the image rows of `kinds` of a submission inside an erasure's
/// transaction and returns their object keys, to delete after the commit.
pub(crate) async fn erase_rows(
    tx: &mut sqlx::PgConnection,
    submission: Uuid,
    kinds: &[ImageKind],
) -> Result<Vec<String>, StoreError> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    Ok(sqlx::query_scalar(
        "DELETE FROM submission_images WHERE submission_id = $1 AND kind = ANY($2) RETURNING object_key",
    )
    .bind(submission)
    .bind(&names)
    .fetch_all(tx)
    .await?)
}
