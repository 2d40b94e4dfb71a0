//! Consuming sessions: the loop that (re)connects with back-off until shutdown,
//! and one session on one connection, batch after batch.

use crate::Worker;
use crate::batch::collect;
use kyc_bus::lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::{Link, LinkOptions, Publisher};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Worker {
    /// Consumes until `shutdown` is cancelled, then finishes the batch in hand,
    /// acknowledges it and returns. Broker and database failures are retried with
    /// back-off, forever: an operator stops a worker, a dependency does not.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // One connection for consuming and publishing. It outlives `shutdown`: the
        // last batch still needs it.
        let link_stop = CancellationToken::new();
        let link = Link::spawn(
            LinkOptions {
                url: self.options.amqp_url.clone(),
                name: self.options.name.clone(),
                topology: self.options.topology.clone(),
                channels: 2,
            },
            link_stop.clone(),
        );
        // Each event may also go to a reply queue: two publishes per submission.
        let publisher = Publisher::new(
            link.clone(),
            self.options.confirm_timeout,
            4 * self.options.batch_size,
        );
        // The bulk lane publishes under a bound of its own, so that a migration's
        // events never take the single-record lane's room: per record an event,
        // per batch message a reply and perhaps dead letters, twice over, for
        // each of its consumers.
        let bulk_publisher = Publisher::new(
            link,
            self.options.confirm_timeout,
            2 * self.options.bulk_consumers
                * self.options.bulk_batch_messages
                * (2 + kyc_core::wire::MAX_BATCH_RECORDS),
        );

        // Consume only once results can be announced: a batch taken earlier would
        // be stored, then fail to announce and go round the retry loop.
        while !shutdown.is_cancelled() && !publisher.link().wait_ready(Duration::from_secs(1)).await
        {
        }

        let mut delays = kyc_bus::backoff();
        while !shutdown.is_cancelled() {
            match self.consume(&publisher, &bulk_publisher, &shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(error = %e, ?delay, "consumer stopped; reconnecting");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        link_stop.cancel();
        tracing::info!("worker stopped");
        Ok(())
    }

    /// One consuming session on one connection: both lanes, each on channels
    /// and consumers of its own, so that a backlog of batch messages on the bulk
    /// lane never delays a single-record submission. The bulk lane has
    /// `bulk_consumers` of them: while one commits its transaction, the next
    /// decides its batch. `Ok` on shutdown; if one consumer fails, the others
    /// stop too and the session is reconnected.
    async fn consume(
        &self,
        publisher: &Publisher,
        bulk_publisher: &Publisher,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let o = &self.options;
        let link = publisher.link();
        if !link.wait_ready(Duration::from_secs(5)).await {
            anyhow::bail!("no broker connection");
        }
        // Stops the other lane when one fails (a child: shutdown stops both).
        let session = shutdown.child_token();
        let single = Lane {
            queue: o.topology.submissions_queue(),
            batch_size: o.batch_size,
            prefetch: o.prefetch,
        };
        let bulk = Lane {
            queue: o.topology.bulk_queue(),
            batch_size: o.bulk_batch_messages,
            prefetch: o.bulk_prefetch,
        };
        let images = async {
            let Some(images) = &self.images else {
                return Ok(());
            };
            let result = self.consume_images(images, publisher, &session).await;
            session.cancel();
            result
        };
        let bulk = futures_util::future::join_all((0..o.bulk_consumers).map(|_| async {
            let result = self.consume_lane(&bulk, bulk_publisher, &session).await;
            session.cancel();
            result
        }));
        let (a, b, c) = tokio::join!(
            async {
                let result = self.consume_lane(&single, publisher, &session).await;
                session.cancel();
                result
            },
            bulk,
            images,
        );
        b.into_iter().fold(a, |all, one| all.and(one)).and(c)
    }

    /// Consumes one lane's queue on a channel of its own until `stop`.
    async fn consume_lane(
        &self,
        lane: &Lane,
        publisher: &Publisher,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let o = &self.options;
        let link = publisher.link();
        let Some(channel) = link.consumer_channel(&o.topology, lane.prefetch).await? else {
            anyhow::bail!("the broker connection went down");
        };
        let mut consumer = channel
            .basic_consume(
                lane.queue.as_str().into(),
                "".into(),
                // Manual acks (no_ack = false): a message leaves the queue only when
                // its batch is stored and announced.
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %lane.queue, "consuming");

        let result = async {
            loop {
                let batch = collect(&mut consumer, lane.batch_size, o.batch_linger, stop).await?;
                if !batch.is_empty() {
                    let n = batch.len();
                    crate::metrics::taken(&batch);
                    let finished = self.finish_batch(batch, publisher, stop).await;
                    // Settled (acked or rejected) or, on an error, returned to
                    // the queue with the channel: no longer held either way.
                    metrics::gauge!(crate::metrics::IN_FLIGHT).decrement(n as f64);
                    finished?;
                }
                if stop.is_cancelled() {
                    return Ok::<(), anyhow::Error>(());
                }
            }
        }
        .await;

        // Stop deliveries first; whatever was prefetched but not handled returns to
        // the queue when the channel closes.
        let _ = channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await;
        kyc_bus::close_channel(&channel, "bye").await;
        result
    }
}

/// One queue a worker consumes, with its own batching.
struct Lane {
    queue: String,
    /// Deliveries per worker batch.
    batch_size: usize,
    /// Unacknowledged deliveries the broker sends ahead on this lane's channel.
    prefetch: u16,
}
