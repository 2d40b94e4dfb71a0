//! `kyc-bench intake`: the HTTP intake alone, no worker running.
//!
//! Ceiling: the bare intake (parse JSON, publish with confirm, answer). Ours:
//! `kyc_intake::Intake` (authenticate, size limit, parse, validate, admin check,
//! publish with headers and confirm, answer). Same load on both: N keep-alive
//! connections posting the same valid 25-field record for D seconds. The queues
//! fill up (nobody consumes): they are purged between phases. The load comes
//! from this process or from `wrk` (`--generator wrk`), in `--rounds` pairs.

use crate::Common;
use crate::bare_intake::BareIntake;
use crate::env::{BenchEnv, with_env};
use crate::load::{HttpArgs, Load};
use crate::ours::OurIntake;
use crate::report::{Phase, Ratio, Report, Role, memory::Peak};
use crate::wrk::WrkPlan;
use kyc_config::Settings;
use std::net::SocketAddr;

#[derive(Debug, Clone, clap::Args)]
pub struct IntakeArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Where the load comes from: this process (`in-process`), or `wrk`, a
    /// separate process that takes no CPU from the server's own runtime.
    #[arg(long, value_enum, default_value_t = Generator::InProcess)]
    pub generator: Generator,
    /// Bare and ours, alternating, this many times each (rounds average out a
    /// noisy neighbour better than one long phase).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    #[command(flatten)]
    pub common: Common,
}

/// The load generator of `kyc-bench intake`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    InProcess,
    Wrk,
}

pub async fn run(settings: &Settings, args: IntakeArgs) -> anyhow::Result<Report> {
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("intake", "req/s", args.common.json);
        args.http.describe(&mut report);
        report.param("publish_channels", env.settings.amqp.publish_channels);

        report.param("generator", format!("{:?}", args.generator));
        report.param("rounds", args.rounds);
        let rounds = args.rounds.max(1);
        for round in 1..=rounds {
            let suffix = if rounds > 1 { format!(" #{round}") } else { String::new() };
            eprintln!("bench intake: bare intake{suffix} …");
            let bare = BareIntake::start(
                &env.amqp_url,
                &env.bare,
                env.settings.amqp.publish_channels,
                &env.stop,
            )
            .await?;
            let (phase, own) = measure(env, &args, bare.addr, &format!("bare intake{suffix}"), Role::Ceiling)
                .await?;
            bare.stop().await?;
            env.purge().await?;
            report.push(phase, own);

            eprintln!("bench intake: our intake{suffix} …");
            let ours = OurIntake::start(env).await?;
            let (phase, own) = measure(env, &args, ours.addr, &format!("intake{suffix}"), Role::Ours).await?;
            ours.stop().await?;
            env.purge().await?;
            report.push(phase, own);
        }

        let mut ratios = Vec::new();
        for pair in report.phases.chunks(2) {
            let (ceiling, ours) = (&pair[0], &pair[1]);
            ratios.push(Ratio::throughput(ours, ceiling));
            ratios.extend(Ratio::latencies(ours, ceiling));
        }
        report.ratios = ratios;
        report.notes.push(match args.generator {
            Generator::InProcess => "the load generator runs in this process (own runtime, own thread): both phases share the 2 cores with it".to_owned(),
            Generator::Wrk => "the load generator is wrk, a separate process: peak RSS is the server's alone (plus this process's broker clients)".to_owned(),
        });
        Ok(report)
    })
    .await
}

/// Loads `addr` for the warm-up and the window; the phase row and whether its
/// peak RSS is its own.
async fn measure(
    env: &BenchEnv,
    args: &IntakeArgs,
    addr: SocketAddr,
    name: &str,
    role: Role,
) -> anyhow::Result<(Phase, bool)> {
    let http = &args.http;
    let peak = Peak::start();
    let mut phase = match args.generator {
        Generator::InProcess => Load::start(http.plan(addr, &env.api_key, None))?
            .finish()
            .await?
            .phase(name, role),
        Generator::Wrk => {
            let plan = WrkPlan {
                connections: http.connections,
                threads: http.load_threads,
                duration: http.duration,
                warmup: http.warmup,
            };
            crate::wrk::measure(&plan, addr, &env.api_key, name, role).await?
        }
    };
    phase.peak_rss_mib = peak.read();
    Ok((phase, peak.own))
}
