//! # kyc-tests — the harness for end-to-end and fault tests
//!
//! Every test gets a [`TestEnv`]: its own PostgreSQL database (migrated) and its
//! own broker prefix, so tests run in parallel on one broker and one server and
//! never see each other's messages. Intake and worker run in the test process
//! (intake on port 0) and are stopped and cleaned up when the env is finished or
//! dropped.
//!
//! If PostgreSQL or RabbitMQ cannot be reached, [`TestEnv::new`] fails with a
//! message naming the service and how to start it: tests never skip silently.

pub mod amqp;
pub mod http;

use kyc_bus::Topology;
use kyc_config::Settings;
use kyc_store::Store;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use http::Api;

/// The server's admin database, for creating and dropping per-test databases.
pub fn pg_base_url() -> String {
    std::env::var("KYC_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub fn amqp_url() -> String {
    std::env::var("KYC_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The e-mail every test project registers as its admin.
pub const ADMIN: &str = "admin@example.com";

/// A running intake or worker.
#[derive(Debug)]
pub struct Running {
    pub stop: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
    pub addr: Option<SocketAddr>,
}

impl Running {
    /// Cancels it and waits for it to finish; its own result.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.handle.await?
    }
}

/// One test's isolated world.
#[derive(Debug)]
pub struct TestEnv {
    pub db_name: String,
    pub db_url: String,
    pub settings: Settings,
    pub store: Store,
    pub topology: Topology,
    stops: Mutex<Vec<CancellationToken>>,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        require_services().await;
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("kyc_t_{}", &id[..12]);
        let db_url = format!("{}/{}", pg_base_url(), db_name);
        kyc_store::migrate(&db_url)
            .await
            .unwrap_or_else(|e| panic!("migrating test database {db_name}: {e}"));
        let prefix = format!("t{}", &id[..12]);

        let mut settings = Settings::default();
        settings.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.database.url = SecretString::from(db_url.clone());
        settings.database.max_connections = 5;
        settings.amqp.url = SecretString::from(amqp_url());
        settings.amqp.prefix = prefix.clone();
        settings.amqp.publish_channels = 2;
        settings.crypto.data_key = Some(SecretString::from(TEST_DATA_KEY));
        settings.crypto.data_key_id = "test".to_owned();
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
            topology: Topology::new(prefix),
            stops: Mutex::new(Vec::new()),
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
        let metrics = kyc_config::telemetry::metrics();
        let intake = kyc_intake::Intake::from_settings(settings, metrics)
            .await
            .expect("intake builds");
        let addr = intake.local_addr().expect("bound address");
        // Only wait when the settings point at the real broker (some tests
        // deliberately point elsewhere).
        if secrecy::ExposeSecret::expose_secret(&settings.amqp.url) == amqp_url() {
            assert!(
                intake.wait_ready(Duration::from_secs(10)).await,
                "intake broker link did not come up"
            );
        }
        let stop = CancellationToken::new();
        self.remember(&stop);
        let handle = tokio::spawn(intake.run(stop.clone()));
        Running {
            stop,
            handle,
            addr: Some(addr),
        }
    }

    /// Starts a worker with this env's settings.
    pub async fn start_worker(&self) -> Running {
        self.start_worker_with(&self.settings).await
    }

    pub async fn start_worker_with(&self, settings: &Settings) -> Running {
        let worker = kyc_worker::Worker::from_settings(settings).expect("worker builds");
        let stop = CancellationToken::new();
        self.remember(&stop);
        let handle = tokio::spawn(worker.run(stop.clone()));
        Running {
            stop,
            handle,
            addr: None,
        }
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

    /// Rows in `submissions` with this id (0 or 1: it is the primary key).
    pub async fn rows_with_id(&self, id: Uuid) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM submissions WHERE id = $1")
            .bind(id)
            .fetch_one(self.store.pool())
            .await
            .expect("count submissions by id");
        n
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
        let db_name = self.db_name.clone();
        let topology = self.topology.clone();
        // Drop may run inside a runtime, where blocking on a future panics: clean
        // up on a thread of our own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(cleanup(db_name, topology));
            }
        });
        let _ = cleanup.join();
    }
}

/// Drops the test database and deletes the test's queues and exchanges.
async fn cleanup(db_name: String, topology: Topology) {
    use sqlx::Connection;
    // Give cancelled services a moment to close their connections.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Ok(mut conn) = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base_url())).await
    {
        let sql = format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
    amqp::delete_topology(&topology).await;
}

/// Base64 of 32 bytes 0x01..=0x20: a fixed key so tests can open sealed columns.
pub const TEST_DATA_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// Fails the test, naming the service and how to start it, if PostgreSQL or
/// RabbitMQ does not answer.
pub async fn require_services() {
    let checks = [
        (
            "PostgreSQL",
            "127.0.0.1:5432",
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        ),
        ("RabbitMQ", "127.0.0.1:5672", "rabbitmq-server -detached"),
    ];
    for (service, addr, start) in checks {
        let reachable =
            tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
                .await
                .is_ok_and(|r| r.is_ok());
        assert!(
            reachable,
            "{service} is not reachable at {addr}. The tests need the real {service}; start it with: {start}"
        );
    }
}

/// Polls `check` every 20 ms until it yields `Some`, or fails the test after
/// `timeout` saying what was awaited.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A complete valid record using all 25 fields.
pub fn full_record() -> serde_json::Value {
    serde_json::json!({
        "admin": ADMIN,
        "email": "jane.doe@example.com",
        "fullName": "Jane Q. Doe",
        "birthDate": "1990-04-12",
        "kycStatus": "approved",
        "firstName": "Jane",
        "lastName": "Doe",
        "idType": "drvlic",
        "issuingCountry": "usa",
        "nationality": "DEU",
        "gender": "female",
        "issueDate": "2020-01-15",
        "expireDate": "2030-01-15",
        "ipAddress": "203.0.113.7",
        "identityNumber": "ID-998877",
        "documentNumber": "DOC-112233",
        "address_city": "Berlin",
        "address_country": "Germany",
        "address_state": "Berlin",
        "address_street": "Unter den Linden 1",
        "address_full": "Unter den Linden 1, 10117 Berlin",
        "cf1": "custom one",
        "cf2": "custom two",
        "cf3": "custom three",
        "userid": "user-42"
    })
}

/// A minimal valid record, distinguished by `userid`.
pub fn record(userid: &str) -> serde_json::Value {
    serde_json::json!({
        "admin": ADMIN,
        "email": "user@example.com",
        "fullName": "Test User",
        "birthDate": "1985-06-30",
        "kycStatus": "approved",
        "userid": userid,
    })
}

/// A JSON object with its keys in exactly the given order (`serde_json::json!`
/// sorts keys, but "the first bad field in document order" needs a fixed order).
pub fn ordered_json(pairs: &[(&str, serde_json::Value)]) -> Vec<u8> {
    let members: Vec<String> = pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{}:{}",
                serde_json::Value::from(*key),
                serde_json::to_string(value).expect("json")
            )
        })
        .collect();
    format!("{{{}}}", members.join(",")).into_bytes()
}
