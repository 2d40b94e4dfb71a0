//! # kyc-store — PostgreSQL for kyc-ingest
//!
//! Owns the database: the connection pool, the embedded migrations in
//! `migrations/`, and the three repositories — [`projects`] (tenants and their
//! hashed API keys), admins (in [`projects`] too) and [`submissions`] (one row
//! per processed submission, written by workers in one transaction per batch).
//! [`pii`] encrypts identity and document numbers before they reach a column;
//! [`directory`] is the in-memory, short-TTL cache of project/admin lookups that
//! lets the intake and workers answer without a database round trip per message.

#![warn(missing_docs)]

pub mod directory;
pub mod images;
pub mod lifecycle;
pub mod pii;
pub mod projects;
pub mod reseal;
pub mod submissions;
pub mod webhooks;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

pub use directory::{Directory, DirectoryLimits};
pub use pii::DataKey;
pub use projects::{ApiKey, Project};

/// Failures at the database boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A query failed or the database could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The row to change does not exist (the project, the admin, …, as named).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The operating system could not supply random bytes for a new API key.
    #[error("system randomness unavailable: {0}")]
    Randomness(#[from] getrandom::Error),
    /// A sealed column that no key of the keyring opens (its key is not in the
    /// ring, or the value was altered or moved from another row or column).
    #[error("the sealed column {column} does not open with the data keyring")]
    Unopenable {
        /// The column.
        column: &'static str,
    },
    /// A lookup that must be quick was not.
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
}

impl StoreError {
    /// Whether retrying later may succeed (connection trouble, not bad data).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_) => true,
                // 08: connection exception, 53: insufficient resources,
                // 57P: operator intervention (e.g. the server shutting down),
                // 40: serialization failure / deadlock.
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57P")
                        || c.starts_with("40")
                }),
                _ => false,
            },
            StoreError::Timeout(_) => true,
            StoreError::Migrate(_)
            | StoreError::NotFound(_)
            | StoreError::Randomness(_)
            | StoreError::Unopenable { .. } => false,
        }
    }
}

/// The embedded migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A handle to the database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A pool that connects lazily: a process can start (and answer from its
    /// caches, or report not-ready) while the database is still away.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // Fail fast when the database is away, so callers can back off rather
            // than pile up waiting for a connection.
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(url)?;
        Ok(Store { pool })
    }

    /// The connection pool, for queries of other crates' own (tests, tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the database answers a trivial query within a second.
    pub async fn ping(&self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(
            tokio::time::timeout(Duration::from_secs(1), ping).await,
            Ok(Ok(_))
        )
    }
}

/// Creates the database named in `url` if it does not exist, then applies every
/// pending migration. Run explicitly (`kycctl db migrate`), never by each replica.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("created database");
    }
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}
