//! Real `kyc-intake` processes for a test, each on a port of its own.

use super::service_vars;
use kyc_testkit::{TestEnv, eventually};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One running `kyc-intake`.
#[derive(Debug)]
pub struct Intake {
    child: Child,
}

/// Real `kyc-intake` processes for one test; every one still running is killed
/// and reaped when this is dropped.
#[derive(Debug)]
pub struct Intakes {
    env: Vec<(String, String)>,
    logs: PathBuf,
    pub running: Vec<Intake>,
}

impl Intakes {
    /// Intakes for `env`'s database and broker prefix with the test keys, no
    /// rate limit, plus `extra` settings (`KYC__…` variables; a later value of
    /// the same variable wins).
    pub fn new(env: &TestEnv, extra: &[(&str, &str)]) -> Intakes {
        let logs = std::env::temp_dir().join(&env.db_name);
        std::fs::create_dir_all(&logs).expect("a directory for intake logs");
        let mut vars = service_vars(env);
        vars.push((
            "KYC__HTTP__RATE_LIMIT_PER_SECOND".to_owned(),
            "0".to_owned(),
        ));
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Intakes {
            env: vars,
            logs,
            running: Vec::new(),
        }
    }

    /// Starts one more intake connecting to `amqp_urls` (one or several,
    /// comma-separated) on a free port; its stderr goes to a log file. Does not
    /// wait for it to be ready.
    pub fn spawn(&mut self, amqp_urls: &str) -> std::net::SocketAddr {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let n = self.running.len() + 1;
        let log = std::fs::File::create(self.logs.join(format!("intake-{n}.log")))
            .expect("intake log file");
        let child = Command::new(kyc_testkit::binary("kyc-intake"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("KYC__AMQP__URL", amqp_urls)
            .env("KYC__HTTP__ADDR", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kyc-intake");
        self.running.push(Intake { child });
        addr
    }

    /// Waits (up to 30 s) until the intake at `addr` answers `/readyz` with 200.
    pub async fn wait_ready(addr: std::net::SocketAddr) {
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/readyz");
        eventually(Duration::from_secs(30), "kyc-intake ready", || async {
            let response = client.get(&url).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
    }

    /// SIGKILLs the `n`th intake started (from 0) and reaps it, off the async
    /// runtime. Returns the instant just before the signal was sent.
    pub async fn kill(&mut self, n: usize) -> std::time::Instant {
        let mut intake = self.running.remove(n);
        tokio::task::spawn_blocking(move || {
            let signalled = std::time::Instant::now();
            intake.child.kill().expect("SIGKILL kyc-intake");
            intake.child.wait().expect("reap kyc-intake");
            signalled
        })
        .await
        .expect("the blocking task")
    }

    /// Where the intakes' logs are.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.logs
    }

    /// Lines of intake `n`'s log (1 for the first started) containing `needle`.
    pub fn log_lines_with(&self, n: usize, needle: &str) -> usize {
        std::fs::read_to_string(self.logs.join(format!("intake-{n}.log")))
            .map(|text| text.lines().filter(|l| l.contains(needle)).count())
            .unwrap_or(0)
    }

    /// Whether every intake is still running (none exited or crashed).
    pub fn all_running(&mut self) -> bool {
        self.running
            .iter_mut()
            .all(|i| matches!(i.child.try_wait(), Ok(None)))
    }
}

impl Drop for Intakes {
    fn drop(&mut self) {
        for intake in &mut self.running {
            let _ = intake.child.kill();
            let _ = intake.child.wait();
        }
    }
}
