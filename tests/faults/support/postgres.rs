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

/// Starts PostgreSQL if it is not running and waits until it accepts
/// connections; whether it does. Never panics (guards call it from `Drop`).
fn restore_pg() -> bool {
    if pg_ready() {
        return true;
    }
    if !port_open(PG_ADDR) {
        pg_ctl("start", &[]);
    }
    wait_blocking(Duration::from_secs(60), pg_ready)
}

/// Starts PostgreSQL if it is not running and waits until it accepts connections.
pub fn ensure_pg_up() {
    assert!(restore_pg(), "PostgreSQL did not come back on {PG_ADDR}");
}

/// PostgreSQL stopped for the lifetime of the guard; dropping it starts the
/// server again and waits until it accepts connections. The guard stays armed
/// until a restart has been confirmed, and its `Drop` never panics (a panic
/// while a failed test unwinds would abort the run with the server down).
#[derive(Debug)]
pub struct PgStopped {
    restored: bool,
}

/// How PostgreSQL is stopped (`pg_ctl -m`).
#[derive(Debug, Clone, Copy)]
pub enum PgStop {
    /// Sessions are cut, transactions rolled back, a checkpoint is written.
    Fast,
    /// The postmaster and every backend are killed (SIGQUIT) with no shutdown
    /// checkpoint: the next start recovers from the write-ahead log, as after a
    /// crash or a power cut.
    Immediate,
}

impl PgStopped {
    /// Stops PostgreSQL in `mode` (off the async runtime: the test's intake and
    /// workers keep running on it) and waits until it no longer answers.
    pub async fn stop(mode: PgStop) -> PgStopped {
        let guard = PgStopped { restored: false };
        let mode = match mode {
            PgStop::Fast => "fast",
            PgStop::Immediate => "immediate",
        };
        let stopped = tokio::task::spawn_blocking(move || {
            pg_ctl("stop", &["-m", mode])
                && wait_blocking(Duration::from_secs(10), || !port_open(PG_ADDR))
        })
        .await
        .expect("the blocking task");
        assert!(stopped, "stopping PostgreSQL (-m {mode})");
        guard
    }

    /// Starts PostgreSQL and waits until it is ready; disarms the guard only
    /// once it is.
    pub async fn start(&mut self) {
        let up = tokio::task::spawn_blocking(restore_pg)
            .await
            .expect("the blocking task");
        assert!(up, "PostgreSQL did not come back on {PG_ADDR}");
        self.restored = true;
    }
}

impl Drop for PgStopped {
    fn drop(&mut self) {
        if !self.restored {
            eprintln!("restoring PostgreSQL");
            self.restored = restore_pg();
            if !self.restored {
                eprintln!("PostgreSQL did not come back on {PG_ADDR}: start it by hand");
            }
        }
    }
}

// ---------------------------------------------------------------- database queries

/// Every stored submission id.
pub async fn stored_ids(env: &TestEnv) -> std::collections::HashSet<uuid::Uuid> {
    sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM submissions")
        .fetch_all(env.store.pool())
        .await
        .expect("read submission ids")
        .into_iter()
        .collect()
}
