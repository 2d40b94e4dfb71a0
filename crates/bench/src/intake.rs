//! `kyc-bench intake`: the HTTP intake alone, no worker running.
//!
//! Ceiling: the bare intake (parse JSON, publish with confirm, answer). Ours:
//! `kyc_intake::Intake` (authenticate, size limit, parse, validate, admin check,
//! publish with headers and confirm, answer). Same load on both: N keep-alive
//! connections posting the same valid 25-field record for D seconds. The queues
//! fill up (nobody consumes): they are purged between phases.

use crate::Common;
use crate::bare_intake::BareIntake;
use crate::env::{BenchEnv, with_env};
use crate::load::{HttpArgs, Load};
use crate::ours::OurIntake;
use crate::report::{Phase, Ratio, Report, Role, memory::Peak};
use kyc_config::Settings;
use std::net::SocketAddr;

#[derive(Debug, Clone, clap::Args)]
pub struct IntakeArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(settings: &Settings, args: IntakeArgs) -> anyhow::Result<Report> {
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("intake", "req/s", args.common.json);
        args.http.describe(&mut report);
        report.param("publish_channels", env.settings.amqp.publish_channels);

        eprintln!("bench intake: bare intake …");
        let bare = BareIntake::start(
            &env.amqp_url,
            &env.bare,
            env.settings.amqp.publish_channels,
            &env.stop,
        )
        .await?;
        let (ceiling, own) = measure(env, &args.http, bare.addr, "bare intake", Role::Ceiling).await?;
        bare.stop().await?;
        env.purge().await?;
        report.push(ceiling, own);

        eprintln!("bench intake: our intake …");
        let ours = OurIntake::start(env).await?;
        let (phase, own) = measure(env, &args.http, ours.addr, "intake", Role::Ours).await?;
        ours.stop().await?;
        env.purge().await?;
        report.push(phase, own);

        let (ceiling, ours) = (&report.phases[0], &report.phases[1]);
        let mut ratios = vec![Ratio::throughput(ours, ceiling)];
        ratios.extend(Ratio::latencies(ours, ceiling));
        report.ratios = ratios;
        report.notes.push(
            "the load generator runs in this process (own runtime, own thread): both phases share the 2 cores with it"
                .to_owned(),
        );
        Ok(report)
    })
    .await
}

/// Loads `addr` for the warm-up and the window; the phase row and whether its
/// peak RSS is its own.
async fn measure(
    env: &BenchEnv,
    http: &HttpArgs,
    addr: SocketAddr,
    name: &str,
    role: Role,
) -> anyhow::Result<(Phase, bool)> {
    let peak = Peak::start();
    let outcome = Load::start(http.plan(addr, &env.api_key, None))?
        .finish()
        .await?;
    let mut phase = outcome.phase(name, role);
    phase.peak_rss_mib = peak.read();
    Ok((phase, peak.own))
}
