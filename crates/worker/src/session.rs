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
            link,
            self.options.confirm_timeout,
            4 * self.options.batch_size,
        );

        // Consume only once results can be announced: a batch taken earlier would
        // be stored, then fail to announce and go round the retry loop.
        while !shutdown.is_cancelled() && !publisher.link().wait_ready(Duration::from_secs(1)).await
        {
        }

        let mut delays = kyc_bus::backoff();
        while !shutdown.is_cancelled() {
            match self.consume(&publisher, &shutdown).await {
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

    /// One consuming session on one connection. `Ok` on shutdown.
    async fn consume(
        &self,
        publisher: &Publisher,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let o = &self.options;
        let link = publisher.link();
        if !link.wait_ready(Duration::from_secs(5)).await {
            anyhow::bail!("no broker connection");
        }
        let Some(channel) = link.consumer_channel(&o.topology, o.prefetch).await? else {
            anyhow::bail!("the broker connection went down");
        };
        let mut consumer = channel
            .basic_consume(
                o.topology.submissions_queue().into(),
                "".into(),
                // Manual acks (no_ack = false): a message leaves the queue only when
                // its batch is stored and announced.
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %o.topology.submissions_queue(), "consuming");

        let result = async {
            loop {
                let batch = collect(&mut consumer, o.batch_size, o.batch_linger, shutdown).await?;
                if !batch.is_empty() {
                    let n = batch.len();
                    crate::metrics::taken(&batch);
                    let finished = self.finish_batch(batch, publisher, shutdown).await;
                    // Settled (acked or rejected) or, on an error, returned to
                    // the queue with the channel: no longer held either way.
                    metrics::gauge!(crate::metrics::IN_FLIGHT).decrement(n as f64);
                    finished?;
                }
                if shutdown.is_cancelled() {
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
        let _ =
            tokio::time::timeout(Duration::from_secs(2), channel.close(200, "bye".into())).await;
        result
    }
}
