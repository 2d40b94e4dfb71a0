//! `kyc-bench memory`: the peak resident memory of each process at default
//! settings, under load.
//!
//! Unlike the other benches, the services run as processes of their own — the
//! release binaries `kyc-intake`, `kyc-worker` and `kycctl` beside this one
//! (`cargo build --release --bins`) — so that each figure is one process's peak
//! alone: `VmHWM` of `/proc/<pid>/status`, the kernel's high-water mark of its
//! resident set. Nothing is set but what points the processes at this run's
//! database, prefix, keys and ports (no batch size, pool or prefetch is tuned),
//! unless the shell sets it: its `KYC__…` and `MIMALLOC_…` variables pass
//! through, and the report lists them.
//!
//! 1. `kyc-intake` and one `kyc-worker` while `wrk` (a process of its own) posts
//!    single records over `--connections` connections for `--duration`;
//! 2. `kycctl push` of a `--records` file in batch messages to the same worker,
//!    until every result is back.
//!
//! The goals (issue "bulk at database speed"): intake ≤ 48 MiB, worker ≤ 64 MiB,
//! push ≤ 128 MiB on a million-record file.

use crate::Common;
use crate::env::{BenchEnv, Table, with_env};
use crate::record;
use crate::report::memory::process_peak_mib as peak_mib;
use crate::report::{Phase, Report, Role};
use crate::wrk::WrkPlan;
use kyc_config::Settings;
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// Records of the file `kycctl push` sends.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// How long `wrk` loads the intake.
    #[arg(long, default_value = "15s", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// `wrk` connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Records per batch message for push (`kycctl push --batch-size`).
    #[arg(long, default_value_t = kyc_cli::push::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    #[command(flatten)]
    pub common: Common,
}

/// Goals in MiB, per process.
const GOALS: [(&str, f64); 3] = [
    ("kyc-intake", 48.0),
    ("kyc-worker", 64.0),
    ("kycctl", 128.0),
];

pub async fn run(settings: &Settings, args: MemoryArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.records > 0, "--records must be at least 1");
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("memory", "items/s", args.common.json);
        report.param("records", args.records);
        report.param("duration", format!("{:?}", args.duration));
        report.param("connections", args.connections);
        let passed: Vec<String> = passed_settings()
            .map(|(k, v)| {
                // Keys, secrets and URLs (which may carry a password): named only.
                let secret = ["KEY", "SECRET", "PASSWORD", "URL"]
                    .iter()
                    .any(|word| k.contains(word));
                if secret {
                    format!("{k}=…")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        if !passed.is_empty() {
            report.param("settings", passed.join(" "));
        }
        std::fs::create_dir_all(&env.dir)?;

        let addr = free_addr()?;
        let operator = free_addr()?;
        let mut intake = Service::spawn(
            env,
            "kyc-intake",
            &[
                ("KYC__HTTP__ADDR", addr.to_string()),
                ("KYC__HTTP__OPERATOR_ADDR", operator.to_string()),
                ("KYC__HTTP__RATE_LIMIT_PER_SECOND", "0".to_owned()),
            ],
        )?;
        let mut worker = Service::spawn(env, "kyc-worker", &[])?;
        ready(&mut intake, operator).await?;

        eprintln!("bench memory: kyc-intake and kyc-worker under wrk …");
        let before = env.rows(Table::Submissions).await?;
        let plan = WrkPlan {
            connections: args.connections,
            threads: 2,
            duration: args.duration,
            warmup: Duration::from_secs(2),
        };
        let mut load = crate::wrk::measure(
            &plan,
            addr,
            &env.api_key,
            "kyc-intake: single records under wrk",
            Role::Ours,
        )
        .await?;
        load.peak_rss_mib = intake.peak_mib();
        let answered = load.count;
        report.push(load, true);
        // The worker's peak once it has stored what the intake took (warm-up
        // included, so at least the measured run's count).
        env.wait_rows(
            Table::Submissions,
            before + answered,
            Duration::from_secs(300),
        )
        .await?;
        let stored = env.rows(Table::Submissions).await? - before;
        let mut singles = Phase::new(
            "kyc-worker: the intake's single records stored",
            Role::Ours,
            stored,
            args.duration.as_secs_f64(),
        );
        singles.peak_rss_mib = worker.peak_mib();
        report.push(singles, true);
        intake.stop()?;

        eprintln!("bench memory: kycctl push of {} records …", args.records);
        let file = env.dir.join("memory.jsonl");
        record::write_jsonl_tagged(&file, "memory", args.records)?;
        let before = env.rows(Table::Submissions).await?;
        let started = Instant::now();
        let push_log = env.dir.join("kycctl.log");
        let mut push = Service::command(env, "kycctl")?
            .arg("push")
            .arg(&file)
            .arg("--api-key")
            .arg(&env.api_key)
            .arg("--batch-size")
            .arg(args.batch_size.to_string())
            .arg("--results")
            .arg(env.dir.join("memory.results.jsonl"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&push_log)?)
            .spawn()
            .map_err(|e| anyhow::anyhow!("start kycctl push: {e}"))?;
        let push_peak = watch_until_exit(&mut push, &push_log).await?;
        let took = started.elapsed().as_secs_f64();
        let stored = env.rows(Table::Submissions).await? - before;
        let mut pushed = Phase::new(
            format!("kycctl push: {} records, batch messages", args.records),
            Role::Ours,
            stored,
            took,
        );
        pushed.peak_rss_mib = push_peak;
        report.push(pushed, true);
        let mut bulk = Phase::new(
            "kyc-worker: after the push too (peak of the whole run)",
            Role::Ours,
            stored,
            took,
        );
        bulk.peak_rss_mib = worker.peak_mib();
        report.push(bulk, true);
        worker.stop()?;

        report.notes.push(format!(
            "peak MiB: VmHWM of each process alone (release binaries, default settings but those under `settings`); goals: {}",
            GOALS
                .iter()
                .map(|(name, mib)| format!("{name} ≤ {mib} MiB"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        report.notes.push(
            "the worker's phases count rows stored; the push's, rows stored by the time every \
             result was back"
                .to_owned(),
        );
        Ok(report)
    })
    .await
}

/// The settings (`KYC__…`) and allocator options (`MIMALLOC_…`) of this
/// shell, which the services get too.
fn passed_settings() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(k, _)| k.starts_with("KYC__") || k.starts_with("MIMALLOC_"))
}

/// A service process of this run; killed when dropped.
struct Service {
    name: &'static str,
    child: Child,
    /// Its standard error (the run's folder is removed at the end).
    log: PathBuf,
}

impl Service {
    /// `name` (a release binary beside this one) with this run's settings and
    /// `extra` variables, its output in a log file of the run.
    fn spawn(
        env: &BenchEnv,
        name: &'static str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let log = env.dir.join(format!("{name}.log"));
        let child = Service::command(env, name)?
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| anyhow::anyhow!("start {name}: {e}"))?;
        Ok(Service { name, child, log })
    }

    /// The binary `name` with only this run's settings in its environment.
    fn command(env: &BenchEnv, name: &str) -> anyhow::Result<Command> {
        let path = sibling(name)?;
        let settings = &env.settings;
        let secret = |s: &Option<secrecy::SecretString>| {
            s.as_ref()
                .map(|s| s.expose_secret().to_owned())
                .unwrap_or_default()
        };
        let mut command = Command::new(path);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            // Settings of this shell pass through (to measure others than the
            // defaults); those below, of this run, take precedence.
            .envs(passed_settings())
            .env("KYC__DATABASE__URL", settings.database.url.expose_secret())
            .env("KYC__AMQP__URL", &env.amqp_url)
            .env("KYC__AMQP__PREFIX", env.ours.prefix())
            .env("KYC__CRYPTO__DATA_KEY", secret(&settings.crypto.data_key))
            .env("KYC__CRYPTO__DATA_KEY_ID", &settings.crypto.data_key_id)
            .env(
                "KYC__CRYPTO__TRANSIT_KEY",
                secret(&settings.crypto.transit_key),
            )
            .env(
                "KYC__CRYPTO__TRANSIT_KEY_ID",
                &settings.crypto.transit_key_id,
            )
            .env("KYC__IMAGES__LOCAL_DIR", env.dir.join("images"))
            .stdin(Stdio::null());
        Ok(command)
    }

    fn peak_mib(&self) -> Option<f64> {
        peak_mib(self.child.id())
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!("bench memory: stopping {}", self.name);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The release binary `name` in this executable's folder.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no folder for {}", exe.display()))?
        .join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} does not exist: build it with `cargo build --release --bins`",
        path.display()
    );
    Ok(path)
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A port free right now on 127.0.0.1.
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits until the intake's `/readyz` answers 200 (at most 30 s), or fails if it
/// exited.
async fn ready(intake: &mut Service, operator: SocketAddr) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("http://{operator}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = intake.child.try_wait()? {
            anyhow::bail!("kyc-intake exited with {status}:\n{}", tail(&intake.log));
        }
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("kyc-intake was not ready within 30 s")
}

/// Polls `child`'s peak RSS every 50 ms until it exits; the last reading (the
/// high-water mark only grows). Fails if it exited unsuccessfully.
async fn watch_until_exit(child: &mut Child, log: &Path) -> anyhow::Result<Option<f64>> {
    let pid = child.id();
    let mut peak = None;
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(
                status.success(),
                "kycctl push exited with {status}:\n{}",
                tail(log)
            );
            return Ok(peak);
        }
        if let Some(mib) = peak_mib(pid) {
            peak = Some(mib);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
