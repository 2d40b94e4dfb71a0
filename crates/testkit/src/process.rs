//! Our intake and worker as real processes (`target/<profile>/kyc-intake`,
//! `kyc-worker`, built by `cargo build --bins`), for tests that need what only
//! a process has: its own Prometheus recorder (`/metrics` of one process, not
//! of the whole test binary) and its own log output (JSON lines on stderr,
//! written to a file the test reads).

use crate::{
    TEST_DATA_KEY, TEST_TRANSIT_KEY, TEST_TRANSIT_KEY_ID, TestEnv, amqp_url, binary, eventually,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `kyc-intake` or `kyc-worker`; killed and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Its standard output and error (JSON log lines).
    pub log: PathBuf,
    /// The public listener (intake only).
    pub addr: Option<SocketAddr>,
    /// Where its `/metrics` is served.
    pub metrics_addr: SocketAddr,
}

/// A port free right now on 127.0.0.1 (bound, read, released).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

/// The settings of `env` as `KYC__…` variables, JSON logs at `info`.
fn vars(env: &TestEnv) -> Vec<(String, String)> {
    [
        ("KYC__DATABASE__URL", env.db_url.as_str()),
        ("KYC__AMQP__URL", amqp_url().as_str()),
        ("KYC__AMQP__PREFIX", env.topology.prefix()),
        ("KYC__CRYPTO__DATA_KEY", TEST_DATA_KEY),
        ("KYC__CRYPTO__DATA_KEY_ID", "test"),
        ("KYC__CRYPTO__TRANSIT_KEY", TEST_TRANSIT_KEY),
        ("KYC__CRYPTO__TRANSIT_KEY_ID", TEST_TRANSIT_KEY_ID),
        ("KYC__WORKER__BATCH_SIZE", "100"),
        ("KYC__WORKER__BATCH_LINGER_MS", "10"),
        ("KYC__LOG__JSON", "true"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn spawn(env: &TestEnv, name: &str, vars: Vec<(String, String)>) -> (Child, PathBuf) {
    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).expect("a directory for process logs");
    let log = dir.join(format!("{name}-{}.log", crate::scratch::random_tag()));
    let out = std::fs::File::create(&log).expect("a log file");
    let err = out.try_clone().expect("a second handle on the log file");
    let mut command = Command::new(binary(name));
    // Only the variables given: none of the caller's KYC settings leak in.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    (child, log)
}

/// Waits until `addr` answers `GET path` with 200.
async fn await_ok(addr: SocketAddr, path: &str, what: &str) {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}{path}");
    eventually(Duration::from_secs(20), what, || {
        let request = client.get(&url).send();
        async move {
            request
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await;
}

impl Process {
    /// Starts `kyc-intake` for `env` (with `extra` variables) and waits until
    /// `/readyz` says ready.
    pub async fn intake(env: &TestEnv, extra: &[(&str, &str)]) -> Process {
        let addr = free_addr();
        let operator = free_addr();
        let mut vars = vars(env);
        vars.push(("KYC__HTTP__ADDR".to_owned(), addr.to_string()));
        vars.push(("KYC__HTTP__OPERATOR_ADDR".to_owned(), operator.to_string()));
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let (child, log) = spawn(env, "kyc-intake", vars);
        let process = Process {
            child,
            log,
            addr: Some(addr),
            metrics_addr: operator,
        };
        await_ok(operator, "/readyz", "kyc-intake ready").await;
        process
    }

    /// Starts `kyc-worker` for `env` with its metrics listener on, and waits
    /// until it serves `/metrics`.
    pub async fn worker(env: &TestEnv, extra: &[(&str, &str)]) -> Process {
        let metrics = free_addr();
        let mut vars = vars(env);
        vars.push(("KYC__WORKER__METRICS_ADDR".to_owned(), metrics.to_string()));
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let (child, log) = spawn(env, "kyc-worker", vars);
        let process = Process {
            child,
            log,
            addr: None,
            metrics_addr: metrics,
        };
        await_ok(metrics, "/metrics", "kyc-worker serving /metrics").await;
        process
    }

    /// Its `/metrics` page.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics page")
    }

    /// Its log lines so far, parsed (lines that are not JSON are skipped).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
