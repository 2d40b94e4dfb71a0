//! Real `kyc-worker` processes for a test, which can be killed.

use kyc_testkit::TestEnv;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// `target/<profile>/kyc-worker`, next to the directory holding this test binary.
pub fn worker_binary() -> PathBuf {
    kyc_testkit::binary("kyc-worker")
}

/// The settings every service process of `env` needs (`KYC__…` variables):
/// its database, broker prefix and keys; logs at `warn`.
pub fn service_vars(env: &TestEnv) -> Vec<(String, String)> {
    vec![
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
        (
            "KYC__CRYPTO__TRANSIT_KEY".to_owned(),
            kyc_testkit::TEST_TRANSIT_KEY.to_owned(),
        ),
        (
            "KYC__CRYPTO__TRANSIT_KEY_ID".to_owned(),
            kyc_testkit::TEST_TRANSIT_KEY_ID.to_owned(),
        ),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ]
}

/// Real `kyc-worker` processes for one test; every one still running is killed
/// (SIGKILL) and reaped when this is dropped.
#[derive(Debug)]
pub struct Workers {
    binary: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    /// Log files are `<name>-<n>.log`: `worker` unless [`Workers::named`].
    name: String,
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
        let mut vars = service_vars(env);
        vars.extend([
            ("KYC__WORKER__BATCH_SIZE".to_owned(), batch_size.to_string()),
            ("KYC__WORKER__PREFETCH".to_owned(), prefetch.to_string()),
        ]);
        for (k, v) in extra {
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        Workers {
            binary: worker_binary(),
            env: vars,
            logs,
            name: "worker".to_owned(),
            started: 0,
            children: Vec::new(),
        }
    }

    /// The same, with log files named `<name>-<n>.log`, so that two sets of
    /// workers of one test keep their logs apart.
    pub fn named(mut self, name: &str) -> Workers {
        self.name = name.to_owned();
        self
    }

    /// Starts one more worker process; its stderr goes to a log file.
    pub fn spawn(&mut self) -> u32 {
        self.started += 1;
        let log_path = self
            .logs
            .join(format!("{}-{}.log", self.name, self.started));
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
            .filter_map(|i| {
                std::fs::read_to_string(self.logs.join(format!("{}-{i}.log", self.name))).ok()
            })
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
