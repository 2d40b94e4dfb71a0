//! CEILING: raw confirmed publishing. The same bytes, persistent and mandatory,
//! to the submissions exchange of a topology, keeping at most `window` publishes
//! waiting for their confirm (a window of 1 is one at a time), over as many
//! confirm channels as our publishers use. No headers, no retries, no timeouts,
//! no in-flight accounting: what the broker and the client library cost.

use futures_util::{StreamExt, TryStreamExt};
use kyc_bus::lapin::options::BasicPublishOptions;
use kyc_bus::lapin::{BasicProperties, Channel, Confirmation};
use kyc_bus::{Topology, persistent};
use kyc_core::wire::SUBMISSION_ROUTING_KEY;
use std::time::{Duration, Instant};

/// Publishes `body` `n` times with at most `window` unconfirmed, spread
/// round-robin over `channels`; how long until the last confirm. Fails on
/// anything but a plain ack.
///
/// Each publish is its own future (send, then await the confirm), `window` of
/// them polled at once: sending is pipelined as well as confirming, which is
/// what a concurrent server does too.
pub async fn publish(
    channels: &[Channel],
    topology: &Topology,
    body: &[u8],
    n: u64,
    window: usize,
) -> anyhow::Result<Duration> {
    publish_with(channels, topology, body, n, window, |_| persistent()).await
}

/// [`publish`] with the properties of the `i`-th message chosen by `properties`
/// (headers and message ids, for phases that feed our worker).
pub async fn publish_with(
    channels: &[Channel],
    topology: &Topology,
    body: &[u8],
    n: u64,
    window: usize,
    properties: impl Fn(u64) -> BasicProperties,
) -> anyhow::Result<Duration> {
    anyhow::ensure!(!channels.is_empty(), "no channel to publish on");
    let exchange = topology.submissions_exchange();
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let channel = &channels[(i % channels.len() as u64) as usize];
            let exchange = exchange.as_str();
            let properties = properties(i);
            async move {
                let confirmation = channel
                    .basic_publish(
                        exchange.into(),
                        SUBMISSION_ROUTING_KEY.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        body,
                        properties,
                    )
                    .await?
                    .await?;
                match confirmation {
                    Confirmation::Ack(None) => Ok(()),
                    other => anyhow::bail!("not a plain ack: {other:?}"),
                }
            }
        })
        .buffer_unordered(window.max(1))
        .try_for_each(|()| async { Ok(()) })
        .await?;
    Ok(started.elapsed())
}

/// The properties of a transit version 1 message (content type and the wire
/// headers, `kyc_core::wire::SubmissionHeadersV2`), with fresh ids and times:
/// what our intake gave a single submission before transit version 2, and
/// batches and image references still carry. With them the bare intake pays
/// the broker what a header table costs, and still nothing else (`kyc-bench
/// intake --bare-with-our-properties`, and a phase of `kyc-bench broker`).
pub fn our_properties() -> BasicProperties {
    use kyc_core::wire::{SubmissionHeadersV2, TRANSIT_CONTENT_TYPE};
    let headers = SubmissionHeadersV2 {
        submission_id: Some(uuid::Uuid::now_v7()),
        project_id: Some(uuid::Uuid::now_v7()),
        transit_key_id: Some("bench"),
        received_at: Some(time::OffsetDateTime::now_utc()),
        traceparent: Some(kyc_core::trace::TraceParent::new_root()),
        ..SubmissionHeadersV2::default()
    };
    persistent()
        .with_content_type(TRANSIT_CONTENT_TYPE.into())
        .with_headers(kyc_bus::headers::encode(&headers))
}
