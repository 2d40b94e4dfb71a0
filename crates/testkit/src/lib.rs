//! # kyc-testkit — the harness for end-to-end tests, fault tests and benches
//!
//! Owns what a test or a bench needs to run our services against the real
//! PostgreSQL and RabbitMQ without touching anyone else's data:
//!
//! - [`scratch`]: a database and broker prefixes created for one run, and removed
//!   only by the run that created them;
//! - [`run`]: our intake and worker started in-process ([`Running`]);
//! - [`process`]: the same as real processes, with their own `/metrics` and logs;
//! - [`TestEnv`]: one test's isolated world on top of both, so tests run in
//!   parallel on one broker and one server and never see each other's messages;
//! - [`http`] and [`amqp`]: the intake's API and the broker as a client sees them;
//! - [`s3`]: a real S3-protocol server (`s3s-fs`) on loopback for the image store;
//! - the example records ([`full_record`], [`record`]), built from the contract's
//!   example in `kyc_core::example`.
//!
//! If PostgreSQL or RabbitMQ cannot be reached, [`TestEnv::new`] fails with a
//! message naming the service and how to start it: tests never skip silently.

pub mod amqp;
mod env;
pub mod http;
pub mod process;
pub mod run;
pub mod s3;
pub mod scratch;
pub mod webhooks;

use std::time::Duration;

pub use env::TestEnv;
pub use http::Api;
pub use run::Running;

/// The server's admin database, for creating and dropping per-test databases.
pub fn pg_base_url() -> String {
    std::env::var("KYC_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub fn amqp_url() -> String {
    std::env::var("KYC_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The e-mail every test project registers as its admin: the one the
/// contract's example names.
pub const ADMIN: &str = kyc_core::example::ADMIN;

/// Base64 of 32 bytes 0x01..=0x20: a fixed key so tests can open sealed columns.
pub const TEST_DATA_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// Base64 of 32 bytes 0x21..=0x40: the test transit key, so tests can seal and
/// open intake messages themselves.
pub const TEST_TRANSIT_KEY: &str = "ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=";
/// The id of [`TEST_TRANSIT_KEY`].
pub const TEST_TRANSIT_KEY_ID: &str = "test-t1";

/// Fails the test, naming the service and how to start it, if PostgreSQL or
/// RabbitMQ does not answer.
pub async fn require_services() {
    // Every test starts here: the rustls provider before any HTTP client.
    kyc_webhooks::install_crypto_provider();
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

/// The contract's example ([`kyc_core::example`]) as the end-to-end tests send
/// it: the `drvlic` alias and a lower-case issuing country (both normalised on
/// the way in, to `drivers_license` and `USA`), a German nationality and
/// `userid` `user-42`; the happy-path test asserts on exactly these.
pub fn full_record() -> serde_json::Value {
    let mut record = kyc_core::example::full_record();
    for (field, value) in [
        ("idType", "drvlic"),
        ("issuingCountry", "usa"),
        ("nationality", "DEU"),
        ("userid", "user-42"),
    ] {
        record[field] = value.into();
    }
    record
}

/// The contract's minimal example (required fields only), told apart by `userid`.
pub fn record(userid: &str) -> serde_json::Value {
    let mut record = kyc_core::example::minimal_record();
    record["userid"] = userid.into();
    record
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

/// `target/<profile>/<name>`: a binary of the workspace, beside the directory of
/// the running test binary (`target/<profile>/deps/`). `cargo test --workspace
/// --all-targets` builds them; otherwise run `cargo build --bins` first.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} does not exist: build it first with `cargo build --bins`",
        path.display()
    );
    path
}
