//! Erasure (`DELETE /v3/submission`, `DELETE /v3/submission/partial`, `kycctl
//! submission erase`): personal data, sensitive numbers, correction history
//! and (once they exist) images go; the id, project, status, kycStatus, idType
//! and the creation and deletion times stay.
//!
//! A full erasure also writes a tombstone, under the project's lock held
//! exclusively (`super::lock_project`). The workers' insert shares that lock and
//! skips tombstoned ids, so a create of the id still queued, redelivered, or
//! replayed from the dead letters is never stored — whether the erasure found a
//! stored row or not.

use super::{LifecycleEvent, lock_project, outbox};
use crate::{Store, StoreError};
use kyc_core::submission::FIELDS;
use uuid::Uuid;

/// What a partial erasure can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// The identity document's images.
    IdImage,
    /// The selfie images.
    SelfieImage,
    /// Every field of `data` but `idType` (and `kycStatus`, which is the status).
    Data,
    /// The e-mail address.
    Email,
    /// The client's id for the person.
    Userid,
}

impl Group {
    /// Every group, as a full erasure records them.
    pub const ALL: [Group; 5] = [
        Group::IdImage,
        Group::SelfieImage,
        Group::Data,
        Group::Email,
        Group::Userid,
    ];

    /// The wire name, e.g. `id_image`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Group::IdImage => "id_image",
            Group::SelfieImage => "selfie_image",
            Group::Data => "data",
            Group::Email => "email",
            Group::Userid => "userid",
        }
    }

    /// The group a wire name names.
    pub fn parse(s: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The columns of `submissions` the group erases.
    fn columns(self) -> Vec<&'static str> {
        match self {
            // Images are rows of their own (`erase_images`).
            Group::IdImage | Group::SelfieImage => Vec::new(),
            Group::Email => vec!["email"],
            Group::Userid => vec!["userid"],
            Group::Data => FIELDS
                .iter()
                .map(|f| f.column)
                .filter(|c| !KEPT.contains(c) && !["email", "userid"].contains(c))
                .collect(),
        }
    }
}

/// Field columns a full erasure keeps: the status and the id type.
const KEPT: [&str; 2] = ["kyc_status", "id_type"];

/// One erasure request.
#[derive(Debug, Clone)]
pub struct Erasure<'a> {
    /// The caller's project.
    pub project_id: Uuid,
    /// The submission.
    pub submission_id: Uuid,
    /// The administrator named in the request, if any (checked by the caller).
    pub admin: Option<&'a str>,
    /// `None`: everything (a DELETE); else only these groups.
    pub groups: Option<Vec<Group>>,
}

/// Why an erasure found nothing to erase.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// No undeleted submission of the project is stored under that id. For a
    /// full erasure the tombstone is written all the same.
    #[error("no such submission")]
    Unknown,
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EraseError {
    fn from(e: sqlx::Error) -> EraseError {
        EraseError::Store(e.into())
    }
}

impl Store {
    /// Erases durably: the row, its history, its tombstone (full erasure) and the
    /// `submission.deleted` event commit together.
    pub async fn erase(&self, erasure: &Erasure<'_>) -> Result<(), EraseError> {
        self.erase_returning_images(erasure).await.map(|_| ())
    }

    /// [`Store::erase`], returning the object keys of the image rows it deleted:
    /// the caller deletes those objects from the image store after the commit
    /// (what it misses, `kycctl images gc` finds).
    pub async fn erase_returning_images(
        &self,
        erasure: &Erasure<'_>,
    ) -> Result<Vec<String>, EraseError> {
        let (id, project) = (erasure.submission_id, erasure.project_id);
        let full = erasure.groups.is_none();
        let groups: Vec<Group> = erasure
            .groups
            .clone()
            .unwrap_or_else(|| Group::ALL.to_vec());
        let mut columns: Vec<&str> = groups.iter().flat_map(|g| g.columns()).collect();
        let erases_sealed = groups.contains(&Group::Data);
        if full {
            columns = FIELDS
                .iter()
                .map(|f| f.column)
                .filter(|c| !KEPT.contains(c))
                .collect();
            columns.push("idempotency_key");
        }
        if erases_sealed {
            columns.push("pii_key_id");
        }
        let mut sets: Vec<String> = columns.iter().map(|c| format!("{c} = NULL")).collect();
        sets.push("erased_groups = ARRAY(SELECT DISTINCT g FROM unnest(erased_groups || $3::text[]) g ORDER BY g)".to_owned());
        if full {
            sets.push("deleted_at = now()".to_owned());
        }
        let update = format!(
            "UPDATE submissions SET {} WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL RETURNING id",
            sets.join(", ")
        );

        let mut tx = self.pool().begin().await?;
        if full {
            lock_project(&mut tx, project, true).await?;
            sqlx::query(
                "INSERT INTO submission_tombstones (id, project_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(project)
            .execute(&mut *tx)
            .await?;
        }
        let names: Vec<String> = groups.iter().map(|g| g.as_str().to_owned()).collect();
        let erased: Option<(Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(update))
            .bind(id)
            .bind(project)
            .bind(&names)
            .fetch_optional(&mut *tx)
            .await?;
        if erased.is_none() {
            // The tombstone (full erasure) stays: a create still on its way is
            // never stored.
            tx.commit().await?;
            return Err(EraseError::Unknown);
        }
        if full || erases_sealed {
            sqlx::query("DELETE FROM submission_history WHERE submission_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let objects = erase_images(&mut tx, id, &groups).await?;
        let at: time::OffsetDateTime = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        outbox::write(
            &mut tx,
            &LifecycleEvent {
                event: "submission.deleted".to_owned(),
                submission_id: id,
                project_id: project,
                fields: names,
                admin: erasure.admin.map(str::to_owned),
                version: None,
                partial: Some(!full),
                at,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(objects)
    }

    /// The undeleted submissions of a project stored with this `userid`.
    pub async fn submissions_of_userid(
        &self,
        project_id: Uuid,
        userid: &str,
    ) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM submissions
             WHERE project_id = $1 AND status = 'accepted' AND userid = $2 AND deleted_at IS NULL
             ORDER BY id",
        )
        .bind(project_id)
        .bind(userid)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }
}

/// Deletes the submission's image rows of `groups` (the identity document's
/// front and back for `id_image`, the selfie for `selfie_image`, the proof of
/// address with `data`) and returns their objects, to delete after the commit.
async fn erase_images(
    tx: &mut sqlx::PgConnection,
    submission_id: Uuid,
    groups: &[Group],
) -> Result<Vec<String>, StoreError> {
    use kyc_core::wire::ImageKind;
    let kinds: Vec<ImageKind> = groups
        .iter()
        .flat_map(|g| match g {
            Group::IdImage => vec![ImageKind::IdImage, ImageKind::IdBackImage],
            Group::SelfieImage => vec![ImageKind::SelfieImage],
            Group::Data => vec![ImageKind::AddressImage],
            Group::Email | Group::Userid => Vec::new(),
        })
        .collect();
    crate::images::erase_rows(tx, submission_id, &kinds).await
}
