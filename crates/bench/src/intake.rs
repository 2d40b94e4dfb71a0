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
    /// The bare intake publishes with the properties of a transit version 1
    /// message (content type and wire headers, which our intake sent before
    /// version 2): what the broker charges for a header table.
    #[arg(long)]
    pub bare_with_our_properties: bool,
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
        report.param("bare_with_our_properties", args.bare_with_our_properties);
        let rounds = args.rounds.max(1);
        for round in 1..=rounds {
            let suffix = if rounds > 1 { format!(" #{round}") } else { String::new() };
            // Every phase leaves the broker work to finish (a purged queue's
            // segments), which the next phase pays for: alternate who goes
            // first (bare, ours; ours, bare; …) so that neither always does.
            let ours_first = round % 2 == 0;
            let mut pair = Vec::with_capacity(2);
            for ours in [ours_first, !ours_first] {
                pair.push(match ours {
                    true => our_round(env, &args, &suffix).await?,
                    false => bare_round(env, &args, &suffix).await?,
                });
            }
            // Reported bare first, then ours, whatever the order they ran in.
            pair.sort_by_key(|(phase, _)| phase.role == Role::Ours);
            for (phase, own) in pair {
                report.push(phase, own);
            }
        }

        let mut ratios = Vec::new();
        for pair in report.phases.chunks(2) {
            let (ceiling, ours) = (&pair[0], &pair[1]);
            ratios.push(Ratio::throughput(ours, ceiling));
            ratios.extend(Ratio::latencies(ours, ceiling));
        }
        // Over all rounds: requests of every "ours" window against every bare
        // one. Round-to-round spread (mostly the broker's) is as large as the
        // gap; this is the figure to quote for several rounds.
        if args.rounds > 1 {
            ratios.push(Ratio::throughput(
                &Phase::all_rounds(&report.phases, Role::Ours, "intake"),
                &Phase::all_rounds(&report.phases, Role::Ceiling, "bare intake"),
            ));
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

/// One phase of the bare intake.
async fn bare_round(
    env: &BenchEnv,
    args: &IntakeArgs,
    suffix: &str,
) -> anyhow::Result<(Phase, bool)> {
    eprintln!("bench intake: bare intake{suffix} …");
    let bare = BareIntake::start(
        &env.amqp_url,
        &env.bare,
        env.settings.amqp.publish_channels,
        args.bare_with_our_properties,
        &env.stop,
    )
    .await?;
    let measured = measure(
        env,
        args,
        bare.addr,
        &format!("bare intake{suffix}"),
        Role::Ceiling,
    )
    .await?;
    bare.stop().await?;
    env.purge().await?;
    Ok(measured)
}

/// One phase of our intake.
async fn our_round(
    env: &BenchEnv,
    args: &IntakeArgs,
    suffix: &str,
) -> anyhow::Result<(Phase, bool)> {
    eprintln!("bench intake: our intake{suffix} …");
    let ours = OurIntake::start(env).await?;
    let measured = measure(env, args, ours.addr, &format!("intake{suffix}"), Role::Ours).await?;
    ours.stop().await?;
    env.purge().await?;
    Ok(measured)
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
