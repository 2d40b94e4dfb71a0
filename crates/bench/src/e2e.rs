//! `kyc-bench e2e`: intake and worker together under the same HTTP load.
//!
//! Ceiling: bare intake + one bare worker. Ours: `kyc_intake::Intake` + one
//! `kyc_worker::Worker`. The figure is submissions *persisted* per second during
//! the window (rows counted at its start and end), with the HTTP latency of the
//! same window; after the load, how long the worker took to store every
//! submission answered 200 (`drain_ms`: 0 means it kept up).

use crate::Common;
use crate::bare_intake::BareIntake;
use crate::bare_worker::{BareWorker, Shape};
use crate::env::{BenchEnv, Table, with_env};
use crate::load::{HttpArgs, Load};
use crate::ours::{OurIntake, OurWorker};
use crate::report::{Phase, Ratio, Report, Role, memory::Peak};
use kyc_config::Settings;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Total requests per second (0: as fast as answered).
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// How long to wait after the load for every 200 to be persisted.
    #[arg(long, default_value = "60s", value_parser = crate::parse_duration)]
    pub drain_timeout: Duration,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(settings: &Settings, args: E2eArgs) -> anyhow::Result<Report> {
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("e2e", "persisted/s", args.common.json);
        args.http.describe(&mut report);
        report.param(
            "rate",
            if args.rate > 0.0 {
                format!("{}", args.rate)
            } else {
                "unlimited".to_owned()
            },
        );
        let shape = Shape::of(&env.settings);
        report.param("batch_size", shape.batch_size);
        report.param("prefetch", shape.prefetch);

        eprintln!("bench e2e: bare intake + bare worker …");
        let peak = Peak::start();
        let intake = BareIntake::start(
            &env.amqp_url,
            &env.bare,
            env.settings.amqp.publish_channels,
            false,
            &env.stop,
        )
        .await?;
        let worker = BareWorker::start(
            &env.amqp_url,
            &env.bare,
            env.store.pool().clone(),
            shape,
            &env.stop,
        );
        let mut phase = measure(env, &args, intake.addr, Table::Scratch, "bare e2e", Role::Ceiling).await?;
        phase.peak_rss_mib = peak.read();
        intake.stop().await?;
        worker.stop().await?;
        env.purge().await?;
        report.push(phase, peak.own);

        eprintln!("bench e2e: our intake + our worker …");
        let peak = Peak::start();
        let intake = OurIntake::start(env).await?;
        let worker = OurWorker::start(env)?;
        let mut phase = measure(env, &args, intake.addr, Table::Submissions, "intake + worker", Role::Ours).await?;
        phase.peak_rss_mib = peak.read();
        intake.stop().await?;
        worker.stop().await?;
        env.purge().await?;
        report.push(phase, peak.own);

        let (ceiling, ours) = (&report.phases[0], &report.phases[1]);
        let mut ratios = vec![Ratio::throughput(ours, ceiling)];
        ratios.extend(Ratio::latencies(ours, ceiling));
        report.ratios = ratios;
        report.notes.push(
            "persisted/s counts rows stored during the window; ok_per_s is HTTP 200s per second; \
             drain_ms is how long after the load every 200 took to be stored"
                .to_owned(),
        );
        if args.rate > 0.0 {
            report.notes.push(
                "at a fixed rate, latency counts from when each request was due (no coordinated omission)"
                    .to_owned(),
            );
        }
        Ok(report)
    })
    .await
}

async fn measure(
    env: &BenchEnv,
    args: &E2eArgs,
    addr: std::net::SocketAddr,
    table: Table,
    name: &str,
    role: Role,
) -> anyhow::Result<Phase> {
    let rate = (args.rate > 0.0).then_some(args.rate);
    let load = Load::start(args.http.plan(addr, &env.api_key, rate))?;
    let window = load.window;
    tokio::time::sleep_until(window.start).await;
    let rows_at_start = env.rows(table).await?;
    tokio::time::sleep_until(window.end).await;
    let rows_at_end = env.rows(table).await?;
    let outcome = load.finish().await?;
    let load_end = Instant::now();
    let drained = env
        .wait_rows(table, outcome.accepted_total, args.drain_timeout)
        .await?;

    let persisted = rows_at_end.saturating_sub(rows_at_start);
    let mut phase = Phase::new(name, role, persisted, outcome.seconds);
    outcome.annotate(&mut phase);
    phase
        .extra
        .insert("ok_per_s", outcome.ok as f64 / outcome.seconds.max(1e-9));
    phase.extra.insert(
        "drain_ms",
        drained.saturating_duration_since(load_end).as_secs_f64() * 1000.0,
    );
    Ok(phase)
}
