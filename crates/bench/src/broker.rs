//! `kyc-bench broker`: confirmed publishing to a quorum queue of the kind of
//! `P.submissions`, nothing else.
//!
//! - ceiling: raw publishing with a window of unconfirmed messages (1000);
//! - raw publishing with the same window and the message properties our
//!   intake sends (content type and wire headers): what the broker charges for
//!   them;
//! - raw publishing one at a time (each confirm awaited before the next), which
//!   shows what a window is worth;
//! - ours: `kyc_bus::Publisher` (over a `Link`, with its in-flight bound and
//!   confirm timeout) with the same number of publishes in flight.
//!
//! The same bytes (the bench record), persistent and mandatory, every time; the
//! queue is purged after each phase.

use crate::Common;
use crate::env::{BenchEnv, with_env};
use crate::raw_publish;
use crate::record;
use crate::report::{Phase, Ratio, Report, Role, memory::Peak};
use futures_util::{StreamExt, TryStreamExt};
use kyc_bus::{Link, LinkOptions, Outgoing, Publisher, persistent};
use kyc_config::Settings;
use kyc_core::wire::SUBMISSION_ROUTING_KEY;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Messages for the windowed phases.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Messages for the one-at-a-time phase (it is ~10x slower).
    #[arg(long, default_value_t = 10_000)]
    pub serial_messages: u64,
    /// Unconfirmed messages in flight.
    #[arg(long, default_value_t = 1000)]
    pub window: usize,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(settings: &Settings, args: BrokerArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.messages > 0 && args.serial_messages > 0 && args.window > 0,
        "--messages, --serial-messages and --window must be at least 1"
    );
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("broker", "msg/s", args.common.json);
        report.param("messages", args.messages);
        report.param("serial_messages", args.serial_messages);
        report.param("window", args.window);
        report.param("publish_channels", env.settings.amqp.publish_channels);
        let body = record::body();
        let connection = kyc_bus::connect(&env.amqp_url, "bench-publisher").await?;
        let channels = env.settings.amqp.publish_channels;
        let many = kyc_bus::confirm_channels(&connection, channels).await?;

        eprintln!("bench broker: raw, window {} …", args.window);
        // Warm the queue up (its first writes are slower), not counted.
        raw_publish::publish(&many, &env.bare, &body, args.messages / 10, args.window).await?;
        env.purge().await?;
        let peak = Peak::start();
        let took =
            raw_publish::publish(&many, &env.bare, &body, args.messages, args.window).await?;
        let mut windowed = Phase::new(
            format!("raw, window {}, {channels} channels", args.window),
            Role::Ceiling,
            args.messages,
            took.as_secs_f64(),
        );
        windowed.peak_rss_mib = peak.read();
        env.purge().await?;
        report.push(windowed, peak.own);

        eprintln!(
            "bench broker: raw, window {}, our properties …",
            args.window
        );
        let peak = Peak::start();
        let took =
            raw_publish::publish_with(&many, &env.bare, &body, args.messages, args.window, |_| {
                raw_publish::our_properties()
            })
            .await?;
        let mut with_properties = Phase::new(
            format!(
                "raw, window {}, {channels} channels, our properties",
                args.window
            ),
            Role::Ours,
            args.messages,
            took.as_secs_f64(),
        );
        with_properties.peak_rss_mib = peak.read();
        env.purge().await?;
        report.push(with_properties, peak.own);

        eprintln!("bench broker: raw, one at a time …");
        let peak = Peak::start();
        let took =
            raw_publish::publish(&many[..1], &env.bare, &body, args.serial_messages, 1).await?;
        let mut serial = Phase::new(
            "raw, one at a time",
            Role::Ceiling,
            args.serial_messages,
            took.as_secs_f64(),
        );
        serial.peak_rss_mib = peak.read();
        env.purge().await?;
        report.push(serial, peak.own);

        eprintln!(
            "bench broker: kyc_bus::Publisher, {} in flight …",
            args.window
        );
        let peak = Peak::start();
        let took = our_publisher(env, &body, args.messages, args.window).await?;
        let mut ours = Phase::new(
            format!(
                "kyc_bus::Publisher, {} in flight, {channels} channels",
                args.window
            ),
            Role::Ours,
            args.messages,
            took.as_secs_f64(),
        );
        ours.peak_rss_mib = peak.read();
        env.purge().await?;
        kyc_bus::close(&connection, "bye").await;
        report.push(ours, peak.own);

        let phases = &report.phases;
        report.ratios = vec![
            Ratio::throughput(&phases[3], &phases[0]),
            Ratio::throughput(&phases[2], &phases[0]),
            // What the broker charges for the intake's content type and wire
            // headers: the same publishing, with them.
            Ratio::throughput(&phases[1], &phases[0]),
        ];
        Ok(report)
    })
    .await
}

/// `n` publishes through our publisher, at most `window` awaiting confirms.
async fn our_publisher(
    env: &BenchEnv,
    body: &[u8],
    n: u64,
    window: usize,
) -> anyhow::Result<Duration> {
    let stop = env.stop.child_token();
    let link = Link::spawn(
        LinkOptions {
            url: env.amqp_url.clone(),
            name: "bench-kyc-publisher".to_owned(),
            topology: env.ours.clone(),
            channels: env.settings.amqp.publish_channels,
        },
        stop.clone(),
    );
    anyhow::ensure!(
        link.wait_ready(Duration::from_secs(10)).await,
        "the publisher's broker link did not come up"
    );
    let publisher = Publisher::new(link, env.settings.amqp.confirm_timeout(), window);
    let exchange = env.ours.submissions_exchange();
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|_| {
            publisher.publish(Outgoing {
                exchange: &exchange,
                routing_key: SUBMISSION_ROUTING_KEY,
                payload: body,
                properties: persistent(),
                mandatory: true,
            })
        })
        .buffer_unordered(window)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    let took = started.elapsed();
    stop.cancel();
    Ok(took)
}
