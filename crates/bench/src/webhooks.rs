//! `kyc-bench webhooks`: deliveries per second to one local receiver.
//!
//! - ceiling: a bare HTTP client (reqwest, keep-alive) POSTing the same bodies
//!   to the same receiver with the same number of requests in flight, nothing
//!   stored, nothing signed;
//! - ours: the dispatcher (`kyc_webhooks::Dispatcher`, in this process) taking
//!   the same number of result events off its queue: each stored as an event and
//!   a delivery, claimed, signed, POSTed and its attempt recorded;
//! - then two references, with `crate::bare_dispatcher`, on the ceilings'
//!   topology (a dispatcher queue of the same kind): the same events taken off
//!   it and POSTed with the same number in flight, nothing signed or stored;
//!   then the same again with one row per delivery written in one statement
//!   per chunk. They show what taking events off RabbitMQ, and keeping any
//!   durable record of each delivery, leave for everything else.
//!
//! The events are published before each dispatcher starts (not timed); the
//! clock runs from its start until the receiver has every delivery.

use crate::Common;
use crate::env::{BenchEnv, with_env};
use crate::report::{Phase, Ratio, Report, Role, memory::Peak};
use futures_util::StreamExt;
use kyc_config::Settings;
use kyc_core::wire::ResultEventV1;
use kyc_store::DataKey;
use kyc_testkit::webhooks::{Answer, Receiver};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, clap::Args)]
pub struct WebhooksArgs {
    /// Deliveries per phase.
    #[arg(long, default_value_t = 5_000)]
    pub deliveries: u64,
    /// Requests in flight to the receiver (the dispatcher's per-endpoint limit).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(settings: &Settings, args: WebhooksArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.deliveries > 0 && args.concurrency > 0,
        "--deliveries and --concurrency must be at least 1"
    );
    with_env(settings, async |env: &BenchEnv| {
        let mut report = Report::new("webhooks", "deliveries/s", args.common.json);
        report.param("deliveries", args.deliveries);
        report.param("concurrency", args.concurrency);
        let n = usize::try_from(args.deliveries)?;
        let (project, _) = env.store.create_project("bench-webhooks", false).await?;
        let events: Vec<ResultEventV1> = (0..n)
            .map(|i| {
                let mut e = ResultEventV1::accepted(
                    Uuid::now_v7(),
                    project.id,
                    time::OffsetDateTime::now_utc(),
                );
                e.userid = Some(format!("bench-{i}"));
                e
            })
            .collect();
        let bodies: Vec<String> = events
            .iter()
            .map(|e| kyc_webhooks::event::submission_event(e).body)
            .collect();

        eprintln!("bench webhooks: bare HTTP client …");
        let receiver = Receiver::start(|_| Answer::Status(200)).await;
        let client = reqwest::Client::new();
        let peak = Peak::start();
        let started = Instant::now();
        let url = receiver.url();
        let failures = futures_util::stream::iter(bodies)
            .map(|body| {
                let request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                async move { request.send().await.map(|r| r.status().is_success()) }
            })
            .buffer_unordered(args.concurrency)
            .filter(|r| std::future::ready(!matches!(r, Ok(true))))
            .count()
            .await;
        let took = started.elapsed();
        anyhow::ensure!(failures == 0, "{failures} bare requests failed");
        let mut bare = Phase::new(
            format!("bare reqwest, {} in flight", args.concurrency),
            Role::Ceiling,
            args.deliveries,
            took.as_secs_f64(),
        );
        bare.peak_rss_mib = peak.read();
        report.push(bare, peak.own);
        drop(receiver);

        eprintln!("bench webhooks: publishing {n} events …");
        let connection = kyc_bus::connect(&env.amqp_url, "bench-webhooks").await?;
        let channel = kyc_bus::confirm_channels(&connection, 1)
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no channel"))?;
        env.ours.declare(&channel).await?;
        let receiver = Receiver::start(|_| Answer::Status(200)).await;
        let key = DataKey::keyring(&env.settings.data_key()?, &[])?;
        let secret = kyc_webhooks::signature::generate_secret()?;
        env.store
            .add_webhook(&key, project.id, &receiver.url(), &[], &secret)
            .await?;
        publish(&channel, env.ours.events_exchange(), &events).await?;

        eprintln!("bench webhooks: our dispatcher …");
        let mut ours_settings = env.settings.clone();
        let w = &mut ours_settings.webhooks;
        w.allow_http = true;
        w.allow_loopback = true;
        w.per_endpoint_in_flight = args.concurrency;
        let peak = Peak::start();
        let stop = CancellationToken::new();
        let dispatcher = kyc_webhooks::Dispatcher::from_settings(&ours_settings)?;
        let started = Instant::now();
        let running = tokio::spawn(dispatcher.run(stop.clone()));
        let deadline = started + Duration::from_secs(600);
        while receiver.count() < n {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the dispatcher did not finish in 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();
        stop.cancel();
        let _ = running.await;
        let mut ours = Phase::new(
            format!("kyc-webhooks dispatcher, {} per endpoint", args.concurrency),
            Role::Ours,
            args.deliveries,
            took.as_secs_f64(),
        );
        ours.peak_rss_mib = peak.read();
        report.push(ours, peak.own);
        drop(receiver);

        // What is left beside the bare exchange once the events come off
        // RabbitMQ, and once each delivery also leaves one row: on the
        // ceilings' topology (queues of the same kind), after ours, so that
        // ours runs on a broker and database as fresh as it always has.
        let receiver = Receiver::start(|_| Answer::Status(200)).await;
        env.bare.declare(&channel).await?;
        for (name, rows) in [
            ("bare dispatcher: off RabbitMQ, POSTed, acked", None),
            (
                "bare dispatcher + one row per delivery",
                Some(env.store.pool()),
            ),
        ] {
            publish(&channel, env.bare.events_exchange(), &events).await?;
            eprintln!("bench webhooks: {name} …");
            let before = receiver.count();
            let peak = Peak::start();
            let started = Instant::now();
            crate::bare_dispatcher::deliver(
                &env.amqp_url,
                &env.bare,
                env.settings.webhooks.prefetch,
                args.concurrency,
                &receiver.url(),
                n,
                rows,
            )
            .await?;
            let took = started.elapsed();
            anyhow::ensure!(
                receiver.count() - before == n,
                "the bare dispatcher delivered {} of {n}",
                receiver.count() - before
            );
            let mut phase = Phase::new(
                format!("{name}, {} in flight", args.concurrency),
                Role::Reference,
                args.deliveries,
                took.as_secs_f64(),
            );
            phase.peak_rss_mib = peak.read();
            report.push(phase, peak.own);
        }
        drop(receiver);

        kyc_bus::close(&connection, "bye").await;
        env.purge().await?;

        let phases = &report.phases;
        report.ratios = vec![
            Ratio::throughput(&phases[1], &phases[0]),
            Ratio::throughput(&phases[2], &phases[0]),
            Ratio::throughput(&phases[3], &phases[0]),
            Ratio::throughput(&phases[1], &phases[3]),
        ];
        Ok(report)
    })
    .await
}

/// Publishes `events` to `exchange` with confirms, a thousand at a time.
async fn publish(
    channel: &kyc_bus::lapin::Channel,
    exchange: String,
    events: &[ResultEventV1],
) -> anyhow::Result<()> {
    for chunk in events.chunks(1000) {
        kyc_testkit::webhooks::publish_events(channel, &exchange, chunk).await?;
    }
    Ok(())
}
