//! Projects, their API keys and their admins.

use crate::{Store, StoreError};
use sha2::{Digest, Sha256};
use uuid::Uuid;

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
        for b in bytes {
            key.push_str(&format!("{b:02x}"));
        }
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

/// SHA-256 of a presented key.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
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
        sqlx::query(
            "INSERT INTO projects (id, name, api_key_sha256, encryption_required) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(key.digest().as_slice())
        .bind(encryption_required)
        .execute(self.pool())
        .await?;
        let project = Project {
            id,
            name: name.to_owned(),
            encryption_required,
            disabled: false,
        };
        Ok((project, key))
    }

    /// The project whose key has this digest.
    pub async fn project_by_key_digest(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<Project>, StoreError> {
        let row: Option<ProjectRow> = sqlx::query_as(
            "SELECT id, name, encryption_required, disabled_at IS NOT NULL FROM projects WHERE api_key_sha256 = $1",
        )
        .bind(digest.as_slice())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(project))
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

    /// Replaces the project's key; the old one stops working (once caches expire).
    pub async fn rotate_key(&self, id: Uuid) -> Result<ApiKey, StoreError> {
        let key = ApiKey::generate()?;
        let done = sqlx::query("UPDATE projects SET api_key_sha256 = $2 WHERE id = $1")
            .bind(id)
            .bind(key.digest().as_slice())
            .execute(self.pool())
            .await?;
        found(done.rows_affected(), "project")?;
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
