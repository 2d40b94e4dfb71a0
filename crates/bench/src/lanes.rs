//! `kyc-bench lanes`: what a migration does to ordinary clients.
//!
//! Single submissions at a fixed rate (100/s by default) with `?wait`, so each
//! response time is the client's time until its row is stored
//! (time-to-persisted), measured three times against our intake and one worker
//! (both in this process):
//!
//! - **idle**: nothing else running;
//! - **with lanes**: while `kycctl push` (`kyc_cli::push::run`) sends a file in
//!   batch messages, which travel on the bulk lane (`<prefix>.submissions.bulk`)
//!   while single submissions keep theirs (`docs/api.md` §12);
//! - **without lanes**: while the same push sends every record as a message of
//!   its own (`--batch-size 1`), on the single-record queue: the single
//!   submissions queue behind the migration's backlog.
//!
//! The window starts once the push is under way and must end before it does
//! (the bench says so if the push finished first: use more `--records`). Each
//! push gets a file of its own, so no record is already stored.

use crate::Common;
use crate::env::{BenchEnv, Table, with_env};
use crate::load::{Load, Plan};
use crate::ours::{OurIntake, OurWorker};
use crate::record;
use crate::report::{Report, Role, memory::Peak};
use kyc_config::Settings;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct LanesArgs {
    /// Records of each migration (the push must outlast the window).
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Single submissions per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Connections of the single submissions' load.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// The measurement window.
    #[arg(long, default_value = "15s", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// How long the push runs before the window opens.
    #[arg(long, default_value = "3s", value_parser = crate::parse_duration)]
    pub lead: Duration,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(settings: &Settings, args: LanesArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.records > 0, "--records must be at least 1");
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("lanes", "singles/s", args.common.json);
        report.param("records", args.records);
        report.param("rate", args.rate);
        report.param("connections", args.connections);
        report.param("duration", format!("{:?}", args.duration));
        let intake = OurIntake::start(env).await?;
        let worker = OurWorker::start(env)?;
        let plan = Plan {
            addr: intake.addr,
            path: "/v3/submission/migration?wait=30".to_owned(),
            api_key: env.api_key.clone(),
            body: record::body(),
            connections: args.connections,
            warmup: Duration::from_secs(1),
            duration: args.duration,
            rate: Some(args.rate),
            threads: 1,
        };

        eprintln!("bench lanes: single submissions, nothing else running …");
        let peak = Peak::start();
        let outcome = Load::start(plan.clone())?.finish().await?;
        let mut idle = outcome.phase("idle: singles with ?wait", Role::Ceiling);
        idle.peak_rss_mib = peak.read();
        report.push(idle, peak.own);

        for (name, batch_size) in [
            ("with lanes: during a push in batch messages", None),
            (
                "without lanes: during a push of one message per record",
                Some(1),
            ),
        ] {
            eprintln!("bench lanes: {name} …");
            let tag = if batch_size.is_some() {
                "single"
            } else {
                "batch"
            };
            let file = env.dir.join(format!("{tag}.jsonl"));
            std::fs::create_dir_all(&env.dir)?;
            record::write_jsonl_tagged(&file, tag, args.records)?;
            let before = env.rows(Table::Submissions).await?;
            let push = crate::pipeline::push_args(
                &file,
                &env.dir.join(format!("{tag}.results.jsonl")),
                &env.api_key,
                1000,
                batch_size.unwrap_or(kyc_cli::push::DEFAULT_BATCH_SIZE),
            )?;
            let settings = env.settings.clone();
            let peak = Peak::start();
            let started = Instant::now();
            let pushing = tokio::spawn(async move { kyc_cli::push::run(&settings, push).await });
            tokio::time::sleep(args.lead).await;
            let outcome = Load::start(plan.clone())?.finish().await?;
            let window_end = Instant::now();
            let pushed = pushing.await??;
            let push_took = started.elapsed();
            let mut phase = outcome.phase(name, Role::Ours);
            phase.peak_rss_mib = peak.read();
            phase.extra.insert(
                "push records/s",
                pushed.records as f64 / push_took.as_secs_f64(),
            );
            if started + push_took < window_end {
                eprintln!(
                    "bench lanes: the push ended before the window did; rerun with more --records"
                );
                phase
                    .extra
                    .insert("push ended before the window (1 = yes)", 1.0);
            }
            report.push(phase, peak.own);
            let expected = before + pushed.accepted;
            env.wait_rows(Table::Submissions, expected, Duration::from_secs(600))
                .await?;
        }
        worker.stop().await?;
        intake.stop().await?;
        Ok(report)
    })
    .await
}
