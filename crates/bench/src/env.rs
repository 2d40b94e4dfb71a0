//! One bench run's private world: a database and a broker prefix it creates
//! for itself (see the crate doc), with a project and its admin; all of it
//! removed at the end, also after an error or Ctrl-C.
//!
//! Two topologies share the run's tag: ours (`kyc_bench_<tag>.submissions`, …)
//! and the ceilings' (`kyc_bench_<tag>-bare.submissions`, …), declared by the
//! same [`Topology::declare`] so both queues are of exactly the same kind.

use crate::record;
use anyhow::Context as _;
use kyc_bus::Topology;
use kyc_bus::lapin::options::QueuePurgeOptions;
use kyc_bus::lapin::{Channel, Connection};
use kyc_config::Settings;
use kyc_store::Store;
use kyc_testkit::scratch::{ScratchBroker, ScratchDb, random_tag};
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What every name this bench creates starts with: its databases are
/// `kyc_bench_<tag>`, its broker prefixes `kyc_bench_<tag>` and
/// `kyc_bench_<tag>-bare`.
pub const MARKER: &str = "kyc_bench_";

/// The ceilings' table: what a bare worker stores per message.
pub const SCRATCH_TABLE: &str = "bench_scratch";

/// A table whose rows a bench counts.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Ours: `submissions`.
    Submissions,
    /// The bare worker's [`SCRATCH_TABLE`].
    Scratch,
    /// `submission_images`.
    Images,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Submissions => "submissions",
            Table::Scratch => SCRATCH_TABLE,
            Table::Images => "submission_images",
        }
    }
}

#[derive(Debug)]
pub struct BenchEnv {
    /// The loaded settings, pointed at this run's database and prefix.
    pub settings: Settings,
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
    /// Created by this run: the only database and prefixes cleanup removes.
    db: ScratchDb,
    broker: ScratchBroker,
}

/// Runs `body` in a fresh [`BenchEnv`] and removes the env afterwards, whatever
/// `body` returned; Ctrl-C interrupts `body` and still cleans up.
pub async fn with_env<T>(
    base: &Settings,
    body: impl AsyncFnOnce(&BenchEnv) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let env = BenchEnv::create(base).await?;
    eprintln!(
        "bench: created database {} and broker prefixes {}, {} (all removed at the end)",
        env.db.name(),
        env.ours.prefix(),
        env.bare.prefix()
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
        let tag = random_tag();
        let db_name = format!("{MARKER}{tag}");
        let prefix = format!("{MARKER}{tag}");
        // The configured database and prefix (production's `kyc`, say) are never
        // used: only the server part of the database URL and the broker URL are.
        let amqp_url = base.amqp.url.expose_secret().to_owned();
        let ours = Topology::new(prefix.clone());
        let bare = Topology::new(format!("{prefix}-bare"));
        // Claimed before anything is created: a taken prefix costs nothing.
        let broker = ScratchBroker::claim(&amqp_url, vec![ours.clone(), bare.clone()])
            .await
            .context("bench broker prefix")?;
        let db = ScratchDb::create(base.database.url.expose_secret(), &db_name)
            .await
            .context("bench database")?;

        let dir = std::env::temp_dir().join(format!("kyc-bench-{tag}"));
        let mut settings = base.clone();
        if settings.images.backend == kyc_config::settings::ImageBackend::Local {
            // The run's own folder, removed at cleanup (not `kyc-images` in the
            // working directory).
            settings.images.local_dir = dir.join("images");
        }
        settings.database.url = SecretString::from(db.url().to_owned());
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
        if settings.crypto.transit_key.is_none() {
            // Likewise for the transit key: the services refuse to start without one.
            settings.crypto.transit_key = Some(SecretString::from(
                kyc_config::settings::DEVELOPMENT_TRANSIT_KEY,
            ));
            settings.crypto.transit_key_id = "bench".to_owned();
        }

        let made = async {
            let store = Store::connect_lazy(db.url(), 4)?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                // The ceiling's row: an id and the body, nothing else.
                "CREATE TABLE {SCRATCH_TABLE} (id uuid PRIMARY KEY, body jsonb NOT NULL)"
            )))
            .execute(store.pool())
            .await?;
            let (project, key) = store.create_project("bench", false).await?;
            store.add_admin(project.id, record::ADMIN).await?;
            let connection = kyc_bus::connect(&amqp_url, "kyc-bench").await?;
            let control = connection.create_channel().await?;
            ours.declare(&control).await?;
            bare.declare(&control).await?;
            Ok::<_, anyhow::Error>((store, key.expose().to_owned(), connection, control))
        }
        .await;
        let (store, api_key, connection, control) = match made {
            Ok(made) => made,
            Err(e) => {
                remove(&db, &broker).await;
                return Err(e);
            }
        };

        Ok(BenchEnv {
            settings,
            dir,
            amqp_url,
            store,
            ours,
            bare,
            api_key,
            stop: CancellationToken::new(),
            connection,
            control,
            db,
            broker,
        })
    }

    /// Empties the submissions and dead-letter queues of both topologies (a phase
    /// must not start with the previous one's backlog). Stop consumers first.
    pub async fn purge(&self) -> anyhow::Result<()> {
        for topology in [&self.ours, &self.bare] {
            for queue in [
                topology.submissions_queue(),
                topology.bulk_queue(),
                topology.dead_queue(),
                topology.webhooks_queue(),
            ] {
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

    /// Empties `table`, then asks for a checkpoint, so that the phase after it
    /// starts with the write-ahead log flushed rather than paying for the
    /// previous phase's (a million rows write more than `max_wal_size`). A
    /// role that may not checkpoint (it takes a superuser or
    /// `pg_checkpoint`) is told once and the bench goes on without.
    pub async fn truncate(&self, table: Table) -> anyhow::Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {}", table.name())))
            .execute(self.store.pool())
            .await?;
        if let Err(e) = sqlx::query("CHECKPOINT").execute(self.store.pool()).await {
            static TOLD: std::sync::Once = std::sync::Once::new();
            TOLD.call_once(|| eprintln!("bench: no CHECKPOINT between phases ({e})"));
        }
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
        kyc_bus::close_channel(&self.control, "bye").await;
        kyc_bus::close(&self.connection, "bye").await;
        remove(&self.db, &self.broker).await;
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            eprintln!("bench: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Drops the run's database and deletes its queues and exchanges: only what
/// [`BenchEnv::create`] created. Best effort: a failure is reported, not returned.
async fn remove(db: &ScratchDb, broker: &ScratchBroker) {
    if let Err(e) = db.drop_database().await {
        eprintln!("bench: {e:#}");
    }
    if let Err(e) = broker.delete().await {
        eprintln!("bench: could not delete the bench queues and exchanges: {e:#}");
    }
}
