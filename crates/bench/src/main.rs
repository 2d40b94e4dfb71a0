//! # kyc-bench — our speed as a ratio to ceilings measured in the same run
//!
//! Owns the benchmarks. Every subcommand measures, in
//! this process and on this machine, the ceiling of the pieces we build on (the
//! *bare* pieces: minimal code doing only what a step cannot avoid) and then our
//! own code under the same load, and prints both with the ratio ours/ceiling.
//! Absolute numbers on a shared 2-core machine mean little; ratios measured side
//! by side do.
//!
//! ## It only touches what it created
//!
//! The bench reads the usual settings (`KYC__…`, `kyc.toml`) but uses only the
//! *server* of the database URL and the broker URL; the configured database and
//! broker prefix (production's `kyc`, say) are never opened, written or removed.
//! Each run makes a random tag and creates, through `kyc_testkit::scratch`:
//!
//! - the database `kyc_bench_<tag>` with `CREATE DATABASE`, which fails if that
//!   name exists, so an existing database is never migrated, filled or dropped;
//! - the broker prefixes `kyc_bench_<tag>` and `kyc_bench_<tag>-bare`, after
//!   checking that none of their queues and exchanges exists (the run stops with
//!   an error if one does).
//!
//! At the end, also after an error or Ctrl-C, it drops that database and deletes
//! those queues and exchanges, and nothing else: the values that remove them can
//! only be obtained by creating them. Any refusal is an error and a non-zero
//! exit. See [`env`]. The pieces:
//!
//! - [`load`]: the HTTP load generator (keep-alive HTTP/1.1 connections, closed
//!   loop or at a fixed rate);
//! - the ceilings, each deliberately minimal: [`bare_intake`], [`bare_worker`],
//!   [`raw_publish`]; and [`ours`], our intake and worker started in-process;
//! - [`report`]: the table / JSON output and peak memory;
//! - one module per subcommand: [`intake`], [`e2e`], [`pipeline`], [`broker`],
//!   [`webhooks`], [`images`], [`lanes`].

mod bare_dispatcher;
mod bare_intake;
mod bare_worker;
mod broker;
mod cpu;
mod e2e;
mod env;
mod images;
mod intake;
mod lanes;
mod list;
mod load;
mod memory;
mod ours;
mod pipeline;
mod raw_publish;
mod record;
mod report;
mod storage;
mod webhooks;
mod wrk;

use clap::{Args, Parser, Subcommand};
use kyc_config::{Settings, telemetry};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "kyc-bench",
    version,
    about = "Benchmarks: our throughput and latency as a ratio to ceilings measured \
             in the same run (each run creates, and removes, its own database and broker prefix)"
)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// HTTP intake alone (no worker): bare intake vs ours, same load.
    Intake(intake::IntakeArgs),
    /// Intake and worker under load: submissions persisted per second and HTTP
    /// latency, bare vs ours.
    E2e(e2e::E2eArgs),
    /// Without HTTP: publish N records and drain them into the database, bare
    /// pipeline vs `kycctl push` with 1, 2, … workers.
    Pipeline(pipeline::PipelineArgs),
    /// Confirmed publishing to a quorum queue: window of 1000 vs one at a time,
    /// and our publisher.
    Broker(broker::BrokerArgs),
    /// Pages of `GET /v3/submission` on a million-row project (p50/p99), and what
    /// the listing's indexes cost the batch insert.
    List(list::ListArgs),
    /// Webhook deliveries per second to a local receiver: a bare HTTP client vs
    /// the dispatcher.
    Webhooks(webhooks::WebhooksArgs),
    /// Image uploads per second (200 KB JPEGs) through `PUT
    /// /v3/submission/image` vs raw writes to the image store.
    Images(images::ImagesArgs),
    /// Time-to-persisted of single submissions (`?wait`) at a fixed rate: idle,
    /// during a push in batch messages (bulk lane), and during a push of one
    /// message per record (no lanes).
    Lanes(lanes::LanesArgs),
    /// Peak RSS of `kyc-intake`, `kyc-worker` and `kycctl push`, each a process
    /// of its own at default settings, under wrk and a large push.
    Memory(memory::MemoryArgs),
}

/// Flags every bench takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn main() -> anyhow::Result<()> {
    // mimalloc, tuned before any thread starts (`kyc_alloc`).
    kyc_alloc::init();
    start()
}

#[tokio::main]
async fn start() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Before any HTTP client (the webhooks bench's): rustls' one provider, ring.
    kyc_webhooks::install_crypto_provider();
    let settings = Settings::load()?;
    telemetry::init(settings.log.json);
    run(&settings, cli.command).await
}

async fn run(settings: &Settings, command: BenchCommand) -> anyhow::Result<()> {
    let report = match command {
        BenchCommand::Intake(args) => intake::run(settings, args).await?,
        BenchCommand::E2e(args) => e2e::run(settings, args).await?,
        BenchCommand::Pipeline(args) => pipeline::run(settings, args).await?,
        BenchCommand::Broker(args) => broker::run(settings, args).await?,
        BenchCommand::List(args) => list::run(settings, args).await?,
        BenchCommand::Webhooks(args) => webhooks::run(settings, args).await?,
        BenchCommand::Images(args) => images::run(settings, args).await?,
        BenchCommand::Lanes(args) => lanes::run(settings, args).await?,
        BenchCommand::Memory(args) => memory::run(settings, args).await?,
    };
    report.print();
    Ok(())
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 10s, 500ms, 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
