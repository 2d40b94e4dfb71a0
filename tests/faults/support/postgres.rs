//! PostgreSQL stopped and restored, and queries of a test's database.

use super::{PG_ADDR, port_open, run, wait_blocking};
use kyc_testkit::TestEnv;
use std::process::Command;
use std::time::Duration;

/// The one PostgreSQL version installed (the single directory in /etc/postgresql).
pub fn pg_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql lists the installed PostgreSQL versions")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    assert_eq!(
        versions.len(),
        1,
        "expected exactly one PostgreSQL version in /etc/postgresql, found {versions:?}"
    );
    versions.remove(0)
}

fn pg_ctl(action: &str, extra: &[&str]) -> bool {
    let version = pg_version();
    let mut args = vec![
        "--skip-systemctl-redirect",
        version.as_str(),
        "main",
        action,
    ];
    args.extend_from_slice(extra);
    run("pg_ctlcluster", &args)
}

fn pg_ready() -> bool {
    Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts PostgreSQL if it is not running and waits until it accepts connections.
pub fn ensure_pg_up() {
    if pg_ready() {
        return;
    }
    if !port_open(PG_ADDR) {
        pg_ctl("start", &[]);
    }
    assert!(
        wait_blocking(Duration::from_secs(60), pg_ready),
        "PostgreSQL did not come back on {PG_ADDR}"
    );
}

/// PostgreSQL stopped for the lifetime of the guard; dropping it starts the
/// server again and waits until it accepts connections.
#[derive(Debug)]
pub struct PgStopped {
    restored: bool,
}

impl PgStopped {
    /// Stops PostgreSQL (fast mode: sessions are cut, transactions rolled back).
    pub fn stop() -> PgStopped {
        let guard = PgStopped { restored: false };
        assert!(pg_ctl("stop", &["-m", "fast"]), "stopping PostgreSQL");
        assert!(
            wait_blocking(Duration::from_secs(10), || !port_open(PG_ADDR)),
            "PostgreSQL still answers after stop"
        );
        guard
    }

    /// Starts PostgreSQL and waits until it is ready.
    pub fn start(&mut self) {
        self.restored = true;
        ensure_pg_up();
    }
}

impl Drop for PgStopped {
    fn drop(&mut self) {
        if !self.restored {
            self.restored = true;
            eprintln!("restoring PostgreSQL");
            ensure_pg_up();
        }
    }
}

// ---------------------------------------------------------------- database queries

/// `count(*)` and `count(DISTINCT id)` of `submissions`.
pub async fn row_counts(env: &TestEnv) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT id) FROM submissions")
        .fetch_one(env.store.pool())
        .await
        .expect("count submissions")
}

/// Every stored submission id.
pub async fn stored_ids(env: &TestEnv) -> std::collections::HashSet<uuid::Uuid> {
    sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM submissions")
        .fetch_all(env.store.pool())
        .await
        .expect("read submission ids")
        .into_iter()
        .collect()
}
