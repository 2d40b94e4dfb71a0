//! Projects, their API keys and their admins.
//!
//! A key is stored only as its lookup digest ([`key_digest`]) in `project_keys`,
//! where a project may hold several keys at once: after a rotation with a grace
//! period, the old key keeps working until its `expires_at`.

use crate::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

/// Domain separation of the lookup digest (see [`key_digest`]).
pub const KEY_LOOKUP_DOMAIN: &[u8] = b"kyc-ingest/api-key-lookup/v1";

/// A project API key as shown once to its owner: `kyc_` and 64 hex digits
/// (256 random bits).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<secret>)")
    }
}

impl ApiKey {
    /// A fresh random key.
    pub fn generate() -> Result<ApiKey, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let mut key = String::with_capacity(4 + 64);
        key.push_str("kyc_");
        kyc_core::hex::push(&mut key, &bytes);
        Ok(ApiKey(key))
    }

    /// The key itself, to print once at creation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and is searched by.
    pub fn digest(&self) -> [u8; 32] {
        key_digest(&self.0)
    }
}

/// The lookup digest of a presented key, what `project_keys.digest` holds:
/// SHA-256([`KEY_LOOKUP_DOMAIN`] ‖ SHA-256(key)).
///
/// Not SHA-256(key) itself: that is the key of the client encryption envelope
/// (docs/api.md §7), which a copy of the database must not yield. Hashing the
/// plain digest again lets a migration convert rows stored under the old scheme
/// (`migrations/20261201000004_project_keys.sql`) without the keys.
pub fn key_digest(key: &str) -> [u8; 32] {
    let envelope_key = Sha256::digest(key.as_bytes());
    let mut lookup = Sha256::new();
    lookup.update(KEY_LOOKUP_DOMAIN);
    lookup.update(envelope_key);
    lookup.finalize().into()
}

/// A project as the services need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The project's id (UUIDv7), part of every submission id it owns.
    pub id: Uuid,
    /// A name for people; not unique.
    pub name: String,
    /// Whether its submissions must come in the encrypted `{"body": …}` form.
    pub encryption_required: bool,
    /// A disabled project's submissions are rejected `invalid_project`.
    pub disabled: bool,
}

type ProjectRow = (Uuid, String, bool, bool);

fn project((id, name, encryption_required, disabled): ProjectRow) -> Project {
    Project {
        id,
        name,
        encryption_required,
        disabled,
    }
}

impl Store {
    /// Creates a project with a fresh key; the key is returned once and only its
    /// digest is kept.
    pub async fn create_project(
        &self,
        name: &str,
        encryption_required: bool,
    ) -> Result<(Project, ApiKey), StoreError> {
        let key = ApiKey::generate()?;
        let id = Uuid::now_v7();
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO projects (id, name, encryption_required) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(encryption_required)
            .execute(&mut *tx)
            .await?;
        insert_key(&mut tx, &key, id).await?;
        tx.commit().await?;
        let project = Project {
            id,
            name: name.to_owned(),
            encryption_required,
            disabled: false,
        };
        Ok((project, key))
    }

    /// The project whose key has this lookup digest ([`key_digest`]), unless
    /// that key has expired.
    pub async fn project_by_key_digest(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<Project>, StoreError> {
        let row: Option<ProjectRow> = sqlx::query_as(
            "SELECT p.id, p.name, p.encryption_required, p.disabled_at IS NOT NULL \
             FROM project_keys k JOIN projects p ON p.id = k.project_id \
             WHERE k.digest = $1 AND (k.expires_at IS NULL OR k.expires_at > now())",
        )
        .bind(digest.as_slice())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(project))
    }

    /// Like [`Store::project_by_key_digest`], with how long the key stays valid
    /// from now (`None`: until rotated), measured by the database's clock so
    /// that callers can count it down on their own monotonic clock.
    pub async fn key_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<(Project, Option<Duration>)>, StoreError> {
        type Row = (Uuid, String, bool, bool, Option<f64>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT p.id, p.name, p.encryption_required, p.disabled_at IS NOT NULL, \
                    extract(epoch FROM k.expires_at - now())::float8 \
             FROM project_keys k JOIN projects p ON p.id = k.project_id \
             WHERE k.digest = $1 AND (k.expires_at IS NULL OR k.expires_at > now())",
        )
        .bind(digest.as_slice())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(id, name, encryption_required, disabled, left)| {
            let left = left.map(|secs| Duration::try_from_secs_f64(secs).unwrap_or_default());
            (project((id, name, encryption_required, disabled)), left)
        }))
    }

    /// The project with this id.
    pub async fn project(&self, id: Uuid) -> Result<Option<Project>, StoreError> {
        let row: Option<ProjectRow> = sqlx::query_as(
            "SELECT id, name, encryption_required, disabled_at IS NOT NULL FROM projects WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(project))
    }

    /// The first project with this name (used by `kycctl dev` to reuse its demo project).
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>, StoreError> {
        let row: Option<ProjectRow> = sqlx::query_as(
            "SELECT id, name, encryption_required, disabled_at IS NOT NULL FROM projects WHERE name = $1 ORDER BY created_at LIMIT 1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(project))
    }

    /// Disables (keeping the first disabling time) or re-enables a project;
    /// [`StoreError::NotFound`] for an unknown id.
    pub async fn set_project_disabled(&self, id: Uuid, disabled: bool) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE projects SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END WHERE id = $1",
        )
        .bind(id)
        .bind(disabled)
        .execute(self.pool())
        .await?;
        found(done.rows_affected(), "project")
    }

    /// Sets whether the project accepts only encrypted submissions;
    /// [`StoreError::NotFound`] for an unknown id.
    pub async fn set_encryption_required(
        &self,
        id: Uuid,
        required: bool,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE projects SET encryption_required = $2 WHERE id = $1")
            .bind(id)
            .bind(required)
            .execute(self.pool())
            .await?;
        found(done.rows_affected(), "project")
    }

    /// Replaces the project's key at once; the old one stops working (once
    /// caches expire). [`Store::rotate_key_with_grace`] with no grace.
    pub async fn rotate_key(&self, id: Uuid) -> Result<ApiKey, StoreError> {
        self.rotate_key_with_grace(id, Duration::ZERO).await
    }

    /// Gives the project a new key; every key it held before keeps working for
    /// `grace` more (never longer than it would have anyway), then expires.
    /// Keys that have already expired are deleted. [`StoreError::NotFound`] for
    /// an unknown id.
    pub async fn rotate_key_with_grace(
        &self,
        id: Uuid,
        grace: Duration,
    ) -> Result<ApiKey, StoreError> {
        let key = ApiKey::generate()?;
        // Capped at about a century, well inside PostgreSQL's interval range.
        let grace_ms = i64::try_from(grace.as_millis())
            .unwrap_or(i64::MAX)
            .min(100 * 366 * 24 * 3600 * 1000);
        let mut tx = self.pool().begin().await?;
        // Locks the project: concurrent rotations of one project take turns.
        let exists: Option<(Uuid,)> =
            sqlx::query_as("SELECT id FROM projects WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("project"));
        }
        sqlx::query("DELETE FROM project_keys WHERE project_id = $1 AND expires_at <= now()")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE project_keys \
             SET expires_at = least(coalesce(expires_at, 'infinity'), now() + $2::bigint * interval '1 millisecond') \
             WHERE project_id = $1",
        )
        .bind(id)
        .bind(grace_ms)
        .execute(&mut *tx)
        .await?;
        insert_key(&mut tx, &key, id).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Registers an admin (idempotent). `email` is stored lower-case.
    pub async fn add_admin(&self, project_id: Uuid, email: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO project_admins (project_id, email) VALUES ($1, lower($2)) ON CONFLICT DO NOTHING",
        )
        .bind(project_id)
        .bind(email)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes an admin (any case); [`StoreError::NotFound`] if there was none.
    pub async fn remove_admin(&self, project_id: Uuid, email: &str) -> Result<(), StoreError> {
        let done =
            sqlx::query("DELETE FROM project_admins WHERE project_id = $1 AND email = lower($2)")
                .bind(project_id)
                .bind(email)
                .execute(self.pool())
                .await?;
        found(done.rows_affected(), "admin")
    }

    /// Every admin of a project (lower-case).
    pub async fn admins(&self, project_id: Uuid) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT email FROM project_admins WHERE project_id = $1 ORDER BY email")
                .bind(project_id)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(|(e,)| e).collect())
    }
}

fn found(rows: u64, what: &'static str) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
}

/// Adds `key` (its lookup digest) to the project's keys, valid until rotated.
async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    key: &ApiKey,
    project_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO project_keys (digest, project_id) VALUES ($1, $2)")
        .bind(key.digest().as_slice())
        .bind(project_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
