//! `kycctl bench …`: speed as a ratio to ceilings measured in the same run
//! (shared/design/quality.md).
//!
//! Every subcommand measures, in this process and on this machine, the ceiling of
//! the pieces we build on (the *bare* pieces: minimal code doing only what a
//! step cannot avoid) and then our own code under the same load, and prints both
//! with the ratio ours/ceiling. Absolute numbers on a shared 2-core machine mean
//! little; ratios measured side by side do.
//!
//! Each run gets its own database (`kyc_bench_<random>`, migrated, dropped at the
//! end) and its own broker prefix (queues and exchanges deleted at the end): see
//! [`env`]. The pieces:
//!
//! - [`load`]: the HTTP load generator (keep-alive HTTP/1.1 connections, closed
//!   loop or at a fixed rate);
//! - the ceilings, each deliberately minimal: [`bare_intake`], [`bare_worker`],
//!   [`raw_publish`]; and [`ours`], our intake and worker started in-process;
//! - [`report`]: the table / JSON output and peak memory;
//! - one module per subcommand: [`intake`], [`e2e`], [`pipeline`], [`broker`].

mod bare_intake;
mod bare_worker;
mod broker;
mod e2e;
mod env;
mod intake;
mod load;
mod ours;
mod pipeline;
mod raw_publish;
mod record;
mod report;

use clap::{Args, Subcommand};
use kyc_config::Settings;
use std::time::Duration;

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
}

/// Flags every bench takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(settings: &Settings, command: BenchCommand) -> anyhow::Result<()> {
    let report = match command {
        BenchCommand::Intake(args) => intake::run(settings, args).await?,
        BenchCommand::E2e(args) => e2e::run(settings, args).await?,
        BenchCommand::Pipeline(args) => pipeline::run(settings, args).await?,
        BenchCommand::Broker(args) => broker::run(settings, args).await?,
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
