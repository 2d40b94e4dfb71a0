//! The worker's consume → decide → store → announce → ack loop, with reconnection.

use crate::announce::{Announcement, announce};
use crate::batch::collect;
use crate::decide::{Decision, decide};
use kyc_bus::lapin::message::Delivery;
use kyc_bus::lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicRejectOptions,
};
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::{Link, LinkOptions, Publisher, Topology};
use kyc_core::wire::ResultEventV1;
use kyc_core::{ErrorCode, Rejection};
use kyc_store::submissions::{Outcome, Verdict};
use kyc_store::{DataKey, Directory, Store, StoreError};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How a worker connects and batches.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub amqp_url: String,
    pub topology: Topology,
    pub batch_size: usize,
    pub batch_linger: Duration,
    pub prefetch: u16,
    pub confirm_timeout: Duration,
    /// Connection name in the broker UI, e.g. `kyc-worker`.
    pub name: String,
}

/// A worker: its options and the store/directory it writes through.
#[derive(Debug, Clone)]
pub struct Worker {
    options: WorkerOptions,
    store: Store,
    directory: Directory,
    data_key: DataKey,
}

/// Why a batch could not be finished now. Nothing of it was acknowledged.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] kyc_bus::PublishError),
    #[error(transparent)]
    Amqp(#[from] kyc_bus::lapin::Error),
}

impl Worker {
    pub fn new(
        options: WorkerOptions,
        store: Store,
        directory: Directory,
        data_key: DataKey,
    ) -> Worker {
        Worker {
            options,
            store,
            directory,
            data_key,
        }
    }

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
                    self.finish_batch(batch, publisher, shutdown).await?;
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

    /// Handles a batch until it is acknowledged, retrying transient failures with
    /// back-off. Gives up only on shutdown (the batch is then redelivered to
    /// another worker) or when the channel itself is gone.
    async fn finish_batch(
        &self,
        batch: Vec<Delivery>,
        publisher: &Publisher,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut delays = kyc_bus::backoff();
        let started = Instant::now();
        loop {
            match self.try_batch(&batch, publisher).await {
                Ok(()) => {
                    metrics::histogram!("kyc_worker_batch_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!("kyc_worker_batches_total").increment(1);
                    return Ok(());
                }
                Err(BatchError::Amqp(e)) => return Err(e.into()),
                Err(e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(error = %e, ?delay, size = batch.len(), "batch failed; retrying");
                    metrics::counter!("kyc_worker_batch_retries_total").increment(1);
                    // A drain gives the batch one more chance after the current
                    // delay, not an endless one: past it the batch is redelivered.
                    let wait = tokio::time::sleep(delay);
                    if shutdown.is_cancelled() {
                        wait.await;
                        if let Err(e) = self.try_batch(&batch, publisher).await {
                            anyhow::bail!("batch not finished before shutdown: {e}");
                        }
                        return Ok(());
                    }
                    wait.await;
                }
            }
        }
    }

    async fn try_batch(&self, batch: &[Delivery], publisher: &Publisher) -> Result<(), BatchError> {
        let today = kyc_core::submission::today_utc();
        // What to store, and for each delivery where its outcome went.
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
        let mut slots: Vec<Slot> = Vec::with_capacity(batch.len());
        for delivery in batch {
            match decide(
                &delivery.properties,
                &delivery.data,
                &self.directory,
                self.data_key.seal_key(),
                today,
            )
            .await?
            {
                Decision::Store { outcome, reply } => {
                    slots.push(Slot::Stored(outcomes.len(), reply));
                    outcomes.push(*outcome);
                }
                Decision::Forbidden {
                    submission_id,
                    idempotency_key,
                    reply,
                } => slots.push(Slot::Forbidden {
                    submission_id,
                    idempotency_key,
                    reply,
                }),
            }
        }
        let verdicts = self.store(&outcomes).await?;

        let now = OffsetDateTime::now_utc();
        let mut announcements = Vec::with_capacity(slots.len());
        let mut reject = Vec::new();
        for (i, slot) in slots.into_iter().enumerate() {
            match slot {
                Slot::Stored(k, reply) => {
                    let outcome = &outcomes[k];
                    let Some(verdict) = &verdicts[k] else {
                        reject.push(i);
                        continue;
                    };
                    let span = tracing::info_span!("submission", submission_id = %outcome.id, project_id = %outcome.project_id);
                    span.in_scope(|| tracing::debug!(accepted = verdict.accepted, code = ?verdict.error_code, "stored"));
                    let status = if verdict.accepted {
                        "accepted"
                    } else {
                        "rejected"
                    };
                    metrics::counter!("kyc_worker_submissions_total", "status" => status)
                        .increment(1);
                    announcements.push(Announcement {
                        event: event(outcome, verdict, now),
                        reply,
                    });
                }
                Slot::Forbidden {
                    submission_id,
                    idempotency_key,
                    reply,
                } => {
                    metrics::counter!("kyc_worker_submissions_total", "status" => "forbidden")
                        .increment(1);
                    if reply.queue.is_some() {
                        let rejection = Rejection::new(ErrorCode::Forbidden);
                        let mut event = ResultEventV1::rejected(
                            submission_id,
                            uuid::Uuid::nil(),
                            &rejection,
                            now,
                        );
                        event.idempotency_key = idempotency_key;
                        announcements.push(Announcement { event, reply });
                    }
                }
            }
        }

        announce(publisher, &self.options.topology, &announcements)
            .instrument(tracing::debug_span!(
                "announce",
                events = announcements.len()
            ))
            .await?;

        // Messages that could not be stored at all go back with a reject, which
        // counts toward the queue's delivery limit; past it they are dead-lettered.
        for &i in &reject {
            metrics::counter!("kyc_worker_poison_total").increment(1);
            batch[i]
                .acker
                .reject(BasicRejectOptions { requeue: true })
                .await?;
        }
        // One ack covering the whole batch. `multiple` acknowledges every earlier
        // tag on this channel too, which is safe because batches on a channel are
        // handled one at a time: every earlier delivery belongs to this batch (or
        // was settled with its own batch), and later prefetched ones have higher tags.
        if let Some(last) = batch
            .iter()
            .enumerate()
            .rev()
            .find(|(i, _)| !reject.contains(i))
        {
            last.1.acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok(())
    }

    /// Stores the outcomes in one transaction. If the batch fails for a reason
    /// other than connection trouble, one bad row must not hold back the rest:
    /// each outcome is then stored on its own, and those that still fail are
    /// returned as `None` (poison).
    async fn store(&self, outcomes: &[Outcome]) -> Result<Vec<Option<Verdict>>, StoreError> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        match self.store.store_batch(outcomes, &self.data_key).await {
            Ok(verdicts) => Ok(verdicts.into_iter().map(Some).collect()),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "batch insert failed; storing one by one");
                let mut verdicts = Vec::with_capacity(outcomes.len());
                for outcome in outcomes {
                    match self
                        .store
                        .store_batch(std::slice::from_ref(outcome), &self.data_key)
                        .await
                    {
                        Ok(mut v) => verdicts.push(v.pop()),
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => {
                            tracing::error!(submission_id = %outcome.id, error = %e, "cannot store submission");
                            verdicts.push(None);
                        }
                    }
                }
                Ok(verdicts)
            }
        }
    }
}

/// Where a delivery's decision went.
enum Slot {
    /// Its outcome is `outcomes[k]`.
    Stored(usize, crate::decide::ReplyTo),
    Forbidden {
        submission_id: uuid::Uuid,
        idempotency_key: Option<String>,
        reply: crate::decide::ReplyTo,
    },
}

fn event(outcome: &Outcome, verdict: &Verdict, at: OffsetDateTime) -> ResultEventV1 {
    let mut event = ResultEventV1::accepted(outcome.id, outcome.project_id, at);
    if !verdict.accepted {
        event.event = kyc_core::wire::EventKind::Rejected;
        event.error_code = verdict.error_code;
        event.message = verdict.message.clone();
    }
    event.idempotency_key = outcome.idempotency_key.clone();
    event.userid = outcome.result.as_ref().ok().and_then(|s| s.userid.clone());
    event
}

impl Worker {
    /// Builds a worker from the process settings (the `kyc-worker` binary and
    /// `kycctl dev` use this).
    pub fn from_settings(settings: &kyc_config::Settings) -> anyhow::Result<Worker> {
        use secrecy::ExposeSecret;
        let store = Store::connect_lazy(
            settings.database.url.expose_secret(),
            settings.database.max_connections,
        )?;
        let directory = Directory::new(
            store.clone(),
            Duration::from_millis(settings.directory.ttl_ms),
        );
        let (key_id, key) = settings.crypto.data_key_or_dev();
        let data_key = DataKey::from_base64(key_id, &key)?;
        let options = WorkerOptions {
            amqp_url: settings.amqp.url.expose_secret().to_owned(),
            topology: Topology::new(settings.amqp.prefix.clone()),
            batch_size: settings.worker.batch_size,
            batch_linger: settings.worker.batch_linger(),
            prefetch: settings.worker.prefetch,
            confirm_timeout: settings.amqp.confirm_timeout(),
            name: "kyc-worker".to_owned(),
        };
        Ok(Worker::new(options, store, directory, data_key))
    }
}
