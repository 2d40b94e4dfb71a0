//! One bench run's private world: a fresh database (`kyc_bench_<random>`,
//! migrated) and a fresh broker prefix, with a project and its admin; all of it
//! removed at the end, also after an error or Ctrl-C.
//!
//! Two topologies share the prefix: ours (`<prefix>.submissions`, …) and the
//! ceilings' (`<prefix>-bare.submissions`, …), declared by the same
//! [`Topology::declare`] so both queues are of exactly the same kind.

use crate::bench::record;
use kyc_bus::Topology;
use kyc_bus::lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions, QueuePurgeOptions};
use kyc_bus::lapin::{Channel, Connection};
use kyc_config::Settings;
use kyc_store::Store;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Connection as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The ceilings' table: what a bare worker stores per message.
pub const SCRATCH_TABLE: &str = "bench_scratch";

/// A table whose rows a bench counts.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Ours: `submissions`.
    Submissions,
    /// The bare worker's [`SCRATCH_TABLE`].
    Scratch,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Submissions => "submissions",
            Table::Scratch => SCRATCH_TABLE,
        }
    }
}

#[derive(Debug)]
pub struct BenchEnv {
    /// The loaded settings, pointed at this run's database and prefix.
    pub settings: Settings,
    pub db_name: String,
    /// The server's `postgres` database, to drop ours from.
    admin_url: String,
    pub amqp_url: String,
    pub store: Store,
    pub ours: Topology,
    pub bare: Topology,
    pub api_key: String,
    /// Cancelled at cleanup: every service a phase starts hangs off it.
    pub stop: CancellationToken,
    /// Scratch files of this run (created on demand, removed at cleanup).
    pub dir: PathBuf,
    connection: Connection,
    control: Channel,
}

/// Runs `body` in a fresh [`BenchEnv`] and removes the env afterwards, whatever
/// `body` returned; Ctrl-C interrupts `body` and still cleans up.
pub async fn with_env<T>(
    base: &Settings,
    body: impl AsyncFnOnce(&BenchEnv) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let env = BenchEnv::create(base).await?;
    eprintln!(
        "bench: database {}, broker prefix {} (both removed at the end)",
        env.db_name,
        env.ours.prefix()
    );
    let result = tokio::select! {
        result = body(&env) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    env.cleanup().await;
    result
}

impl BenchEnv {
    async fn create(base: &Settings) -> anyhow::Result<BenchEnv> {
        let id = Uuid::now_v7().simple().to_string();
        // The last hex digits of a UUIDv7 are random.
        let tag = &id[id.len() - 10..];
        let db_name = format!("kyc_bench_{tag}");
        let prefix = format!("bench{tag}");
        let server = base.database.url.expose_secret();
        let db_url = with_database(server, &db_name);
        let admin_url = with_database(server, "postgres");
        let amqp_url = base.amqp.url.expose_secret().to_owned();

        let mut settings = base.clone();
        settings.database.url = SecretString::from(db_url.clone());
        settings.amqp.prefix = prefix.clone();
        settings.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        // A per-project rate limit would measure its own setting, not our code.
        settings.http.rate_limit_per_second = 0;
        settings.http.drain_timeout_ms = 3_000;
        if settings.crypto.data_key.is_none() {
            // A throwaway database: the development key is fine and spares the
            // warning it otherwise prints.
            settings.crypto.data_key = Some(SecretString::from(
                kyc_config::settings::DEVELOPMENT_DATA_KEY,
            ));
            settings.crypto.data_key_id = "bench".to_owned();
        }

        let made = async {
            kyc_store::migrate(&db_url).await?;
            let store = Store::connect_lazy(&db_url, 4)?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                // The ceiling's row: an id and the body, nothing else.
                "CREATE TABLE {SCRATCH_TABLE} (id uuid PRIMARY KEY, body jsonb NOT NULL)"
            )))
            .execute(store.pool())
            .await?;
            let (project, key) = store.create_project("bench", false).await?;
            store.add_admin(project.id, record::ADMIN).await?;
            Ok::<_, anyhow::Error>((store, key.expose().to_owned()))
        }
        .await;
        let (store, api_key) = match made {
            Ok(made) => made,
            Err(e) => {
                drop_database(&admin_url, &db_name).await;
                return Err(e);
            }
        };

        let ours = Topology::new(prefix.clone());
        let bare = Topology::new(format!("{prefix}-bare"));
        let declared = async {
            let connection = kyc_bus::connect(&amqp_url, "kycctl-bench").await?;
            let control = connection.create_channel().await?;
            ours.declare(&control).await?;
            bare.declare(&control).await?;
            Ok::<_, anyhow::Error>((connection, control))
        }
        .await;
        let (connection, control) = match declared {
            Ok(declared) => declared,
            Err(e) => {
                drop_database(&admin_url, &db_name).await;
                delete_topologies(&amqp_url, &[&ours, &bare]).await;
                return Err(e);
            }
        };

        Ok(BenchEnv {
            settings,
            dir: std::env::temp_dir().join(format!("kyc-bench-{tag}")),
            db_name,
            admin_url,
            amqp_url,
            store,
            ours,
            bare,
            api_key,
            stop: CancellationToken::new(),
            connection,
            control,
        })
    }

    /// Empties the submissions and dead-letter queues of both topologies (a phase
    /// must not start with the previous one's backlog). Stop consumers first.
    pub async fn purge(&self) -> anyhow::Result<()> {
        for topology in [&self.ours, &self.bare] {
            for queue in [topology.submissions_queue(), topology.dead_queue()] {
                self.control
                    .queue_purge(queue.into(), QueuePurgeOptions::default())
                    .await?;
            }
        }
        Ok(())
    }

    /// Rows in `table`.
    pub async fn rows(&self, table: Table) -> anyhow::Result<u64> {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            table.name()
        )))
        .fetch_one(self.store.pool())
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Empties `table`.
    pub async fn truncate(&self, table: Table) -> anyhow::Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {}", table.name())))
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Polls until `table` holds at least `n` rows; when that was seen, or an
    /// error after `timeout`.
    pub async fn wait_rows(
        &self,
        table: Table,
        n: u64,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.rows(table).await?;
            if rows >= n {
                return Ok(Instant::now());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {rows} of {n} rows in {} after {timeout:?}",
                table.name()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops what is still running, drops the database, deletes both topologies
    /// and the scratch files. Best effort: a failure is reported, not returned.
    async fn cleanup(self) {
        self.stop.cancel();
        // Let cancelled services close their connections.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.store.pool().close().await;
        let _ = self.control.close(200, "bye".into()).await;
        let _ = self.connection.close(200, "bye".into()).await;
        drop_database(&self.admin_url, &self.db_name).await;
        delete_topologies(&self.amqp_url, &[&self.ours, &self.bare]).await;
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            eprintln!("bench: could not remove {}: {e}", self.dir.display());
        }
    }
}

async fn drop_database(admin_url: &str, db_name: &str) {
    let dropped = async {
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await
    }
    .await;
    if let Err(e) = dropped {
        eprintln!("bench: could not drop database {db_name}: {e}");
    }
}

async fn delete_topologies(amqp_url: &str, topologies: &[&Topology]) {
    let deleted = async {
        let connection = kyc_bus::connect(amqp_url, "kycctl-bench-cleanup").await?;
        let channel = connection.create_channel().await?;
        for topology in topologies {
            for queue in [topology.submissions_queue(), topology.dead_queue()] {
                channel
                    .queue_delete(queue.into(), QueueDeleteOptions::default())
                    .await?;
            }
            for exchange in [
                topology.submissions_exchange(),
                topology.events_exchange(),
                topology.dead_exchange(),
            ] {
                channel
                    .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                    .await?;
            }
        }
        connection.close(200, "bye".into()).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = deleted {
        eprintln!("bench: could not delete the bench queues and exchanges: {e}");
    }
}

/// `url` with its database (path) replaced by `name`, query kept:
/// `postgres://u@h:5432/kyc?x=y` → `postgres://u@h:5432/<name>?x=y`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/kyc", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/kyc?sslmode=disable", "x"),
            "postgres://u:p@db:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://db:5432", "x"),
            "postgres://db:5432/x"
        );
    }
}
