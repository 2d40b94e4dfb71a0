//! Support for the fault tests: stopping and restoring the shared PostgreSQL and
//! RabbitMQ (guards that restore them on drop, even when a test fails), and real
//! `kyc-worker` processes that can be killed.

use kyc_testkit::TestEnv;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PG_ADDR: &str = "127.0.0.1:5432";
pub const AMQP_ADDR: &str = "127.0.0.1:5672";

/// Whether something accepts TCP connections at `addr`.
pub fn port_open(addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().expect("a socket address");
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Polls `check` every 100 ms, blocking, until it holds or `timeout` passes.
fn wait_blocking(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command to completion; whether it exited with 0. Its output is shown
/// only when it fails.
fn run(program: &str, args: &[&str]) -> bool {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "`{program} {}` exited with {}: {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("cannot run `{program}`: {e}");
            false
        }
    }
}

// ---------------------------------------------------------------- PostgreSQL

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

// ---------------------------------------------------------------- RabbitMQ

fn broker_app_running() -> bool {
    port_open(AMQP_ADDR)
        && Command::new("rabbitmqctl")
            .args(["-q", "await_startup", "--timeout", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Makes sure the broker runs and accepts AMQP: `start_app` if only the
/// application was stopped, `rabbitmq-server -detached` if the node is gone.
pub fn ensure_broker_up() {
    if port_open(AMQP_ADDR) {
        run("rabbitmqctl", &["-q", "await_startup"]);
        return;
    }
    if !run("rabbitmqctl", &["-q", "start_app"]) {
        // The node itself is not running.
        let _ = Command::new("rabbitmq-server")
            .arg("-detached")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    assert!(
        wait_blocking(Duration::from_secs(120), broker_app_running),
        "RabbitMQ did not come back on {AMQP_ADDR}"
    );
}

/// The broker application stopped (`rabbitmqctl stop_app`) for the lifetime of
/// the guard; dropping it runs `start_app` and waits for startup.
#[derive(Debug)]
pub struct BrokerStopped {
    restored: bool,
}

impl BrokerStopped {
    pub fn stop() -> BrokerStopped {
        let guard = BrokerStopped { restored: false };
        assert!(
            run("rabbitmqctl", &["-q", "stop_app"]),
            "rabbitmqctl stop_app"
        );
        guard
    }

    /// `start_app`, then waits until the broker accepts AMQP; when `start_app`
    /// returned.
    pub fn start(&mut self) -> Instant {
        self.restored = true;
        let started = run("rabbitmqctl", &["-q", "start_app"]);
        let returned = Instant::now();
        assert!(started, "rabbitmqctl start_app");
        ensure_broker_up();
        returned
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        if !self.restored {
            self.restored = true;
            eprintln!("restoring RabbitMQ");
            ensure_broker_up();
        }
    }
}

/// Both shared services up before a fault test starts (an earlier run may have
/// been killed while one was stopped).
pub fn ensure_services_up() {
    ensure_pg_up();
    ensure_broker_up();
}

// ---------------------------------------------------------------- workers

/// `target/<profile>/kyc-worker`, next to the directory holding this test binary.
pub fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/debug/deps/faults-… → target/debug/kyc-worker
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let binary = dir.join("kyc-worker");
    assert!(
        binary.is_file(),
        "{} does not exist: run `cargo build --bins` first",
        binary.display()
    );
    binary
}

/// Real `kyc-worker` processes for one test; every one still running is killed
/// (SIGKILL) and reaped when this is dropped.
#[derive(Debug)]
pub struct Workers {
    binary: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    started: usize,
    pub children: Vec<Child>,
}

impl Workers {
    /// Workers for `env`'s database and broker prefix, with `batch_size` and
    /// `prefetch`, plus any `extra` settings (`KYC__…` variables).
    pub fn new(
        env: &TestEnv,
        batch_size: usize,
        prefetch: usize,
        extra: &[(&str, &str)],
    ) -> Workers {
        let logs = std::env::temp_dir().join(&env.db_name);
        std::fs::create_dir_all(&logs).expect("a directory for worker logs");
        let mut vars = vec![
            ("KYC__DATABASE__URL".to_owned(), env.db_url.clone()),
            ("KYC__AMQP__URL".to_owned(), kyc_testkit::amqp_url()),
            (
                "KYC__AMQP__PREFIX".to_owned(),
                env.topology.prefix().to_owned(),
            ),
            (
                "KYC__CRYPTO__DATA_KEY".to_owned(),
                kyc_testkit::TEST_DATA_KEY.to_owned(),
            ),
            ("KYC__CRYPTO__DATA_KEY_ID".to_owned(), "test".to_owned()),
            ("KYC__WORKER__BATCH_SIZE".to_owned(), batch_size.to_string()),
            ("KYC__WORKER__PREFETCH".to_owned(), prefetch.to_string()),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
        ];
        for (k, v) in extra {
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        Workers {
            binary: worker_binary(),
            env: vars,
            logs,
            started: 0,
            children: Vec::new(),
        }
    }

    /// Starts one more worker process; its stderr goes to a log file.
    pub fn spawn(&mut self) -> u32 {
        self.started += 1;
        let log_path = self.logs.join(format!("worker-{}.log", self.started));
        let log = std::fs::File::create(&log_path).expect("worker log file");
        let child = Command::new(&self.binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kyc-worker");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// SIGKILLs the oldest running worker and reaps it; false if none was running.
    pub fn kill_oldest(&mut self) -> bool {
        if self.children.is_empty() {
            return false;
        }
        let mut child = self.children.remove(0);
        if let Ok(Some(status)) = child.try_wait() {
            panic!("worker {} had already exited with {status}", child.id());
        }
        child.kill().expect("SIGKILL a worker");
        let _ = child.wait();
        true
    }

    /// Where the workers' logs are.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.logs
    }

    /// Lines of all worker logs containing `needle`.
    pub fn log_lines_with(&self, needle: &str) -> usize {
        (1..=self.started)
            .filter_map(|i| std::fs::read_to_string(self.logs.join(format!("worker-{i}.log"))).ok())
            .map(|text| text.lines().filter(|l| l.contains(needle)).count())
            .sum()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM to a process (no signal crate needed: `kill -TERM`).
pub fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

// ---------------------------------------------------------------- broker queries

/// Ready messages and consumers of a queue (a passive declare).
pub async fn queue_counts(env: &TestEnv, queue: &str) -> (u32, u32) {
    use kyc_bus::lapin::options::QueueDeclareOptions;
    use kyc_bus::lapin::types::FieldTable;
    let (connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("passive declare of {queue}: {e}"));
    let _ = connection.close(200, "bye".into()).await;
    (declared.message_count(), declared.consumer_count())
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
