//! Publishing records in batch messages (`kyc_core::wire::SubmissionBatchV1`):
//! many records per broker message, each with the idempotency key it would have
//! alone ([`input::message_id`]) and its line number as correlation id, so the results
//! file, `--resume` and idempotency do not depend on the batch size.

use super::input;
use super::publishing::{MAX_ATTEMPTS, Publishing};
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::FuturesUnordered;
use kyc_bus::{Outgoing, PublishError, persistent};
use kyc_core::wire::{
    BATCH_ZSTD, MAX_BATCH_BYTES, MAX_BATCH_RECORD_BYTES, SUBMISSION_BATCH_ROUTING_KEY,
    SUBMISSION_BATCH_TYPE, compress_batch, encode_batch,
};

/// Records whose body alone is larger than this are sent as single messages:
/// a worker then answers them on their own (`payload_too_large`, most likely).
pub(super) const MAX_BATCHED_RECORD: usize = MAX_BATCH_BYTES / 8;

/// A batch, its attempt number, and how its publish settled.
pub(super) type Confirmed = (Vec<input::Record>, u32, Result<(), PublishError>);

/// Gathers records into batches of up to `size` records and
/// [`MAX_BATCH_RECORD_BYTES`] bytes.
pub(super) struct Gathering {
    size: usize,
    records: Vec<input::Record>,
    bytes: usize,
}

impl Gathering {
    pub(super) fn new(size: usize) -> Gathering {
        Gathering {
            size,
            records: Vec::with_capacity(size),
            bytes: 0,
        }
    }

    /// Adds a record; returns a full batch to publish, if one is complete.
    pub(super) fn push(&mut self, record: input::Record) -> Option<Vec<input::Record>> {
        let full = (self.bytes + record.body.len() > MAX_BATCH_RECORD_BYTES
            && !self.records.is_empty())
        .then(|| self.take())
        .flatten();
        self.bytes += record.body.len();
        self.records.push(record);
        if full.is_none() && self.records.len() >= self.size {
            return self.take();
        }
        full
    }

    /// The records gathered so far, if any.
    pub(super) fn take(&mut self) -> Option<Vec<input::Record>> {
        self.bytes = 0;
        (!self.records.is_empty())
            .then(|| std::mem::replace(&mut self.records, Vec::with_capacity(self.size)))
    }
}

impl Publishing {
    /// Publishes `records` as one batch message to the bulk lane.
    pub(super) fn publish_batch(
        &self,
        records: Vec<input::Record>,
        attempt: u32,
    ) -> BoxFuture<'static, Confirmed> {
        let first = records.first().map_or(0, |r| r.line);
        let channel = self.channels[first as usize % self.channels.len()].clone();
        let exchange = self.exchange.clone();
        let lines: Vec<String> = records.iter().map(|r| r.line.to_string()).collect();
        let body = encode_batch(
            records
                .iter()
                .zip(&lines)
                .map(|(r, line)| (Some(r.key.as_str()), Some(line.as_str()), r.batch_member())),
        );
        // Compressed first (encrypted bytes would not shrink), then encrypted
        // as a whole: nothing of any record is readable on the broker without
        // the project's key.
        let (body, encoding) = match self.compress.then(|| compress_batch(&body)).flatten() {
            Some(packed) => (packed, Some(BATCH_ZSTD)),
            None => (body, None),
        };
        let body = if self.encrypt {
            kyc_core::envelope::encrypt_request(&self.api_key, &body)
        } else {
            body
        };
        let mut properties = persistent()
            .with_type(SUBMISSION_BATCH_TYPE.into())
            .with_headers(self.headers.clone())
            .with_reply_to(self.reply_queue.as_str().into());
        if let Some(encoding) = encoding {
            properties = properties.with_content_encoding(encoding.into());
        }
        async move {
            let result = channel
                .publish(Outgoing {
                    exchange: &exchange,
                    routing_key: SUBMISSION_BATCH_ROUTING_KEY,
                    payload: &body,
                    properties,
                    mandatory: true,
                })
                .await;
            (records, attempt, result)
        }
        .boxed()
    }
}

/// Waits for the next settled batch; a nack is retried (the same keys, so
/// harmless), any other failure ends the push.
pub(super) async fn settle_batch(
    publishing: &Publishing,
    in_flight: &mut FuturesUnordered<BoxFuture<'static, Confirmed>>,
) -> anyhow::Result<()> {
    let Some((records, attempt, result)) = in_flight.next().await else {
        return Ok(());
    };
    let lines = match (records.first(), records.last()) {
        (Some(first), Some(last)) if first.line == last.line => format!("line {}", first.line),
        (Some(first), Some(last)) => format!(
            "line {} (with the rest of its batch, lines {}–{})",
            first.line, first.line, last.line
        ),
        _ => "an empty batch".to_owned(),
    };
    match result {
        Ok(()) => Ok(()),
        Err(PublishError::Nacked) if attempt + 1 < MAX_ATTEMPTS => {
            in_flight.push(publishing.publish_batch(records, attempt + 1));
            Ok(())
        }
        Err(e @ PublishError::Nacked) => Err(anyhow::Error::new(e)
            .context(format!("the broker refused {lines} {MAX_ATTEMPTS} times"))),
        Err(e @ PublishError::Returned(_)) => Err(anyhow::Error::new(e).context(format!(
            "the broker returned {lines} as unroutable: is the topology prefix right, and do the workers declare the bulk lane?"
        ))),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "publishing {lines}; rerun with --resume to continue where this run stopped"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: u64, len: usize) -> input::Record {
        input::Record::new(line, vec![b'x'; len], None)
    }

    #[test]
    fn batches_close_at_their_size_and_at_their_byte_budget() {
        let mut g = Gathering::new(3);
        assert!(g.push(record(1, 10)).is_none());
        assert!(g.push(record(2, 10)).is_none());
        let full = g.push(record(3, 10)).expect("full at three");
        assert_eq!(full.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(g.take().is_none());

        let mut g = Gathering::new(100);
        assert!(g.push(record(1, MAX_BATCH_RECORD_BYTES - 5)).is_none());
        // Would exceed the budget: the batch so far goes, the record starts the next.
        let full = g.push(record(2, 10)).expect("full by bytes");
        assert_eq!(full.len(), 1);
        assert_eq!(g.take().expect("the second batch")[0].line, 2);
    }
}
