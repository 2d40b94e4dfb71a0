//! A real `kyc-intake` process for a test, which can be killed mid-request.

use super::service_vars;
use kyc_testkit::{TestEnv, eventually};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One `kyc-intake` process on a loopback port of its own; killed (SIGKILL)
/// and reaped when dropped.
#[derive(Debug)]
pub struct IntakeProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl IntakeProcess {
    /// Starts `kyc-intake` for `env` with `extra` settings and waits until it
    /// answers `/readyz` with 200.
    pub async fn start(env: &TestEnv, extra: &[(&str, &str)]) -> IntakeProcess {
        // A free port, released just before the intake binds it: another process
        // taking it in between would fail the readiness wait, loudly.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let dir = std::env::temp_dir().join(&env.db_name);
        std::fs::create_dir_all(&dir).expect("a directory for the intake's log");
        let log = dir.join("intake.log");
        let mut vars = service_vars(env);
        vars.push(("KYC__HTTP__ADDR".to_owned(), addr.to_string()));
        for (k, v) in extra {
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        let child = Command::new(kyc_testkit::binary("kyc-intake"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the intake's log file"))
            .spawn()
            .expect("start kyc-intake (built by `cargo build --bins`)");
        let intake = IntakeProcess {
            child: Some(child),
            addr,
            log,
        };
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/readyz");
        eventually(Duration::from_secs(30), "kyc-intake ready", || async {
            let response = client.get(&url).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        intake
    }

    /// SIGKILLs the process and reaps it (off the async runtime).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            tokio::task::spawn_blocking(move || {
                child.kill().expect("SIGKILL kyc-intake");
                child.wait().expect("reap kyc-intake")
            })
            .await
            .expect("the blocking task");
        }
    }
}

impl Drop for IntakeProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
