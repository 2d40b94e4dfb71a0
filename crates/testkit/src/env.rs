//! [`TestEnv`]: one test's isolated world.

use crate::run::{self, Running};
use crate::scratch::{ScratchBroker, ScratchDb, random_tag};
use crate::{
    ADMIN, TEST_DATA_KEY, TEST_TRANSIT_KEY, TEST_TRANSIT_KEY_ID, amqp_url, eventually, pg_base_url,
    require_services,
};
use kyc_bus::Topology;
use kyc_config::Settings;
use kyc_store::Store;
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One test's isolated world: a scratch database (`kyc_t_<random>`, migrated)
/// and a scratch broker prefix (`t<random>`), removed when it is dropped.
#[derive(Debug)]
pub struct TestEnv {
    pub db_name: String,
    pub db_url: String,
    pub settings: Settings,
    pub store: Store,
    pub topology: Topology,
    stops: Mutex<Vec<CancellationToken>>,
    /// Taken by `Drop`, which removes them.
    scratch: Option<(ScratchDb, ScratchBroker)>,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        require_services().await;
        let tag = random_tag();
        let db_name = format!("kyc_t_{tag}");
        let db = ScratchDb::create(&pg_base_url(), &db_name)
            .await
            .unwrap_or_else(|e| panic!("test database {db_name}: {e:#}"));
        let db_url = db.url().to_owned();
        let prefix = format!("t{tag}");
        let topology = Topology::new(prefix.clone());
        let broker = ScratchBroker::claim(&amqp_url(), vec![topology.clone()])
            .await
            .unwrap_or_else(|e| panic!("test broker prefix {prefix}: {e:#}"));

        let mut settings = Settings::default();
        settings.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.database.url = SecretString::from(db_url.clone());
        settings.database.max_connections = 5;
        settings.amqp.url = SecretString::from(amqp_url());
        settings.amqp.prefix = prefix;
        settings.amqp.publish_channels = 2;
        settings.crypto.data_key = Some(SecretString::from(TEST_DATA_KEY));
        settings.crypto.data_key_id = "test".to_owned();
        // Explicit keys, never the development ones: the services refuse to start
        // without keys, as in production.
        settings.crypto.transit_key = Some(SecretString::from(TEST_TRANSIT_KEY));
        settings.crypto.transit_key_id = TEST_TRANSIT_KEY_ID.to_owned();
        settings.worker.batch_size = 100;
        settings.worker.prefetch = 200;
        settings.worker.batch_linger_ms = 10;
        settings.http.drain_timeout_ms = 5_000;

        let store =
            Store::connect_lazy(&db_url, 3).expect("a lazy pool cannot fail for a valid url");
        TestEnv {
            db_name,
            db_url,
            settings,
            store,
            topology,
            stops: Mutex::new(Vec::new()),
            scratch: Some((db, broker)),
        }
    }

    fn remember(&self, stop: &CancellationToken) {
        self.stops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stop.clone());
    }

    /// Starts an intake with this env's settings and waits until its broker link is up.
    pub async fn start_intake(&self) -> Running {
        self.start_intake_with(&self.settings).await
    }

    pub async fn start_intake_with(&self, settings: &Settings) -> Running {
        let stop = CancellationToken::new();
        self.remember(&stop);
        // Only wait when the settings point at the real broker (some tests
        // deliberately point elsewhere).
        let wait_ready = secrecy::ExposeSecret::expose_secret(&settings.amqp.url) == amqp_url();
        run::start_intake(settings, stop, wait_ready)
            .await
            .unwrap_or_else(|e| panic!("intake: {e:#}"))
    }

    /// Starts a worker with this env's settings.
    pub async fn start_worker(&self) -> Running {
        self.start_worker_with(&self.settings).await
    }

    pub async fn start_worker_with(&self, settings: &Settings) -> Running {
        let stop = CancellationToken::new();
        self.remember(&stop);
        run::start_worker(settings, stop).expect("worker builds")
    }

    /// A project with [`ADMIN`] registered; returns its id and API key.
    pub async fn project(&self, encryption_required: bool) -> (Uuid, String) {
        let (project, key) = self
            .store
            .create_project("test", encryption_required)
            .await
            .expect("create project");
        self.store
            .add_admin(project.id, ADMIN)
            .await
            .expect("add admin");
        (project.id, key.expose().to_owned())
    }

    /// Rows in `submissions`.
    pub async fn count_rows(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM submissions")
            .fetch_one(self.store.pool())
            .await
            .expect("count submissions");
        n
    }

    /// Stored rows per `userid`, the value the client sent (rejected rows keep
    /// no fields, so only accepted ones are counted). A record stored twice under
    /// two different ids shows here as a count of 2; counting ids cannot show it.
    pub async fn rows_per_userid(&self) -> BTreeMap<String, i64> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT userid, count(*) FROM submissions WHERE userid IS NOT NULL GROUP BY userid",
        )
        .fetch_all(self.store.pool())
        .await
        .expect("count submissions by userid");
        rows.into_iter().collect()
    }

    /// Userids stored more than once, with their row counts (empty when no
    /// record was stored twice).
    pub async fn duplicated_userids(&self) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT userid, count(*) FROM submissions WHERE userid IS NOT NULL
             GROUP BY userid HAVING count(*) > 1 ORDER BY userid",
        )
        .fetch_all(self.store.pool())
        .await
        .expect("find duplicated userids")
    }

    /// Waits (at most `timeout`, failing the test after it) until every userid
    /// of `userids` has a row.
    pub async fn await_userids_stored(&self, userids: &BTreeSet<String>, timeout: Duration) {
        eventually(timeout, "every submission answered 200 stored", || async {
            let stored = self.rows_per_userid().await;
            userids.iter().all(|u| stored.contains_key(u)).then_some(())
        })
        .await;
    }

    /// Asserts that no userid is stored twice and that every stored userid is one
    /// of `sent`; returns the stored userids (for tests where only some of the
    /// sent records are stored yet, or may be).
    pub async fn stored_userids_at_most_once(&self, sent: &BTreeSet<String>) -> BTreeSet<String> {
        let duplicated = self.duplicated_userids().await;
        assert!(
            duplicated.is_empty(),
            "records stored more than once (userid, rows): {:?}",
            &duplicated[..duplicated.len().min(10)]
        );
        let stored: BTreeSet<String> = self.rows_per_userid().await.into_keys().collect();
        let extra: Vec<&String> = stored.difference(sent).take(10).collect();
        assert!(extra.is_empty(), "stored userids never sent: {extra:?}");
        stored
    }

    /// Asserts that every userid in `sent` was stored exactly once and nothing
    /// else was stored (by userid): no record lost, none stored twice.
    pub async fn assert_userids_stored_once(&self, sent: &BTreeSet<String>) {
        let stored = self.stored_userids_at_most_once(sent).await;
        let missing: Vec<&String> = sent.difference(&stored).take(10).collect();
        assert!(
            missing.is_empty(),
            "{} sent userids not stored, first {missing:?}",
            sent.len() - stored.len()
        );
    }

    /// Rows of `project` stored under this idempotency key (or `message_id`),
    /// as the client sent it.
    pub async fn rows_with_idempotency_key(&self, project: Uuid, key: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM submissions WHERE project_id = $1 AND idempotency_key = $2",
        )
        .bind(project)
        .bind(key)
        .fetch_one(self.store.pool())
        .await
        .expect("count submissions by idempotency key")
    }

    /// The stored status (`accepted`/`rejected`) of a submission, if it has a row.
    pub async fn status_of(&self, id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM submissions WHERE id = $1")
            .bind(id)
            .fetch_optional(self.store.pool())
            .await
            .expect("read submission status")
    }

    /// Waits until the submission has a row; its status.
    pub async fn await_row(&self, id: Uuid, timeout: Duration) -> String {
        eventually(
            timeout,
            &format!("a row for submission {id}"),
            || async move { self.status_of(id).await },
        )
        .await
    }

    /// Stops every service this env started and waits for them.
    pub async fn stop_all(&self) {
        let stops: Vec<_> = self
            .stops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for stop in stops {
            stop.cancel();
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for stop in self
            .stops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            stop.cancel();
        }
        // Scratch files (bulk files, results, worker logs) live in
        // `$TMPDIR/<db_name>`; a failing test keeps them for inspection.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&self.db_name));
        }
        let Some((db, broker)) = self.scratch.take() else {
            return;
        };
        // Drop may run inside a runtime, where blocking on a future panics: clean
        // up on a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    // Give cancelled services a moment to close their connections.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // Best effort: a leftover scratch name harms no other test.
                    let _ = db.drop_database().await;
                    let _ = broker.delete().await;
                });
            }
        });
        let _ = cleanup.join();
    }
}
