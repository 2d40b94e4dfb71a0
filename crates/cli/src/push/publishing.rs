//! Publishing one record: its message, confirm and the retry of a nacked publish.

use super::input;
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::FuturesUnordered;
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::{ConfirmChannel, Outgoing, PublishError, persistent};
use kyc_core::wire::SUBMISSION_ROUTING_KEY;
use std::sync::Arc;

/// How to publish one record.
pub(super) struct Publishing {
    pub(super) channels: Vec<ConfirmChannel>,
    pub(super) exchange: Arc<str>,
    pub(super) api_key: String,
    /// `x-api-key`, and `x-reply-mode: batch`: results come back a worker batch at
    /// a time, not one reply message per record.
    pub(super) headers: FieldTable,
    pub(super) encrypt: bool,
    /// Batch messages compressed ([`kyc_core::wire::BATCH_ZSTD`]).
    pub(super) compress: bool,
    pub(super) reply_queue: String,
}

/// Records per hand-over from the reader thread.
pub(super) const CHUNK: usize = 256;

/// Broker nacks tolerated per record before the push gives up.
pub(super) const MAX_ATTEMPTS: u32 = 3;

/// A record, its attempt number, and how its publish settled.
type Confirmed = (input::Record, u32, Result<(), PublishError>);

impl Publishing {
    pub(super) fn publish(
        &self,
        record: input::Record,
        attempt: u32,
    ) -> BoxFuture<'static, Confirmed> {
        // Spread by line number.
        let channel = self.channels[record.line as usize % self.channels.len()].clone();
        let exchange = self.exchange.clone();
        let body = if self.encrypt {
            kyc_core::envelope::encrypt_request(&self.api_key, &record.body)
        } else {
            record.body.clone()
        };
        let properties = persistent()
            .with_headers(self.headers.clone())
            .with_message_id(record.key.as_str().into())
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(record.line.to_string().into());
        async move {
            let result = channel
                .publish(Outgoing {
                    exchange: &exchange,
                    routing_key: SUBMISSION_ROUTING_KEY,
                    payload: &body,
                    properties,
                    // Mandatory: an unroutable record must not count as sent.
                    mandatory: true,
                })
                .await;
            (record, attempt, result)
        }
        .boxed()
    }
}

/// Waits for the next settled publish; a nack is retried (same message id, so
/// harmless), any other failure (returned, confirm timeout, channel error) ends
/// the push.
pub(super) async fn settle(
    publishing: &Publishing,
    in_flight: &mut FuturesUnordered<BoxFuture<'static, Confirmed>>,
) -> anyhow::Result<()> {
    let Some((record, attempt, result)) = in_flight.next().await else {
        return Ok(());
    };
    let line = record.line;
    match result {
        Ok(()) => Ok(()),
        Err(PublishError::Nacked) if attempt + 1 < MAX_ATTEMPTS => {
            in_flight.push(publishing.publish(record, attempt + 1));
            Ok(())
        }
        Err(e @ PublishError::Nacked) => Err(anyhow::Error::new(e).context(format!(
            "the broker refused line {line} {MAX_ATTEMPTS} times"
        ))),
        Err(e @ PublishError::Returned(_)) => Err(anyhow::Error::new(e).context(format!(
            "the broker returned line {line} as unroutable: is the topology prefix right?"
        ))),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "publishing line {line}; rerun with --resume to continue where this run stopped"
        ))),
    }
}
