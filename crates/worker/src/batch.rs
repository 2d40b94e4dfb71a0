//! Collecting a batch of deliveries.

use futures_util::StreamExt;
use kyc_bus::lapin::message::Delivery;
use kyc_bus::lapin::{self, Consumer};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waits for a first delivery (or shutdown), then takes up to `size` in total,
/// waiting at most `linger` after the first for the rest. An empty batch means
/// shutdown was requested.
pub async fn collect(
    consumer: &mut Consumer,
    size: usize,
    linger: Duration,
    shutdown: &CancellationToken,
) -> Result<Vec<Delivery>, lapin::Error> {
    let mut batch = Vec::with_capacity(size);
    tokio::select! {
        biased;
        () = shutdown.cancelled() => return Ok(batch),
        next = consumer.next() => batch.push(delivered(next)?),
    }
    // One timer for the whole batch, not one per delivery.
    let deadline = tokio::time::sleep(linger);
    tokio::pin!(deadline);
    while batch.len() < size {
        tokio::select! {
            biased;
            next = consumer.next() => batch.push(delivered(next)?),
            () = &mut deadline => break,
        }
    }
    Ok(batch)
}

fn delivered(next: Option<Result<Delivery, lapin::Error>>) -> Result<Delivery, lapin::Error> {
    match next {
        Some(result) => result,
        // The consumer was cancelled by the broker (queue deleted, connection
        // closed): treat it like a channel failure and reconnect.
        None => Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
            lapin::ChannelState::Closed,
            "consumer stream ended",
        ))),
    }
}
