//! One batch: decide → store → announce → ack, retried with back-off until it is
//! acknowledged.

use crate::Worker;
use crate::announce::{Announcement, announce};
use crate::bounds::{Screened, screen};
use crate::dead_letter::{DeadReason, Letter, dead_letter, dead_letter_built};
use crate::decide::{Decision, ReplyTo, decide};
use crate::records::{self, BatchDecision, RecordDecision, RecordSource, Sealing};
use kyc_bus::Publisher;
use kyc_bus::lapin::message::Delivery;
use kyc_bus::lapin::options::{BasicAckOptions, BasicRejectOptions};
use kyc_core::wire::{EventKind, ResultEventV1};
use kyc_core::{ErrorCode, Rejection};
use kyc_store::StoreError;
use kyc_store::submissions::{Outcome, Verdict};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

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
    /// Handles a batch until it is acknowledged, retrying transient failures with
    /// back-off. Gives up only on shutdown (the batch is then redelivered to
    /// another worker) or when the channel itself is gone.
    pub(crate) async fn finish_batch(
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
                    metrics::histogram!(crate::metrics::BATCH_SECONDS)
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
        // What to store, and for each decision the delivery it came from and
        // where its outcome went: one decision per single message, one per
        // record of a batch message.
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
        let mut slots: Vec<(usize, Slot)> = Vec::with_capacity(batch.len());
        // Per delivery of a batch message: its API key and whether it was sealed,
        // to dead-letter one of its records the same way.
        let mut sealing: Vec<Option<Sealing>> = vec![None; batch.len()];
        for (i, delivery) in batch.iter().enumerate() {
            if records::is_batch(&delivery.properties) {
                self.decide_records(i, delivery, today, &mut outcomes, &mut slots, &mut sealing)
                    .await?;
                continue;
            }
            if let Screened::Refused(announcement) = screen(
                &delivery.properties,
                &delivery.data,
                self.options.body_limit,
                &self.directory,
                self.options.topology.prefix(),
            )
            .await?
            {
                slots.push((i, Slot::Refused(announcement)));
                continue;
            }
            match decide(
                &delivery.properties,
                &delivery.data,
                &self.directory,
                &self.transit,
                self.options.topology.prefix(),
                today,
            )
            .await?
            {
                Decision::Store { outcome, reply } => {
                    slots.push((i, Slot::Stored(outcomes.len(), reply, None)));
                    outcomes.push(*outcome);
                }
                Decision::Forbidden {
                    submission_id,
                    idempotency_key,
                    reply,
                } => slots.push((
                    i,
                    Slot::Forbidden {
                        submission_id,
                        idempotency_key,
                        reply,
                    },
                )),
            }
        }
        let store_started = Instant::now();
        let verdicts = self.store(&outcomes).await?;
        metrics::histogram!(crate::metrics::STORE_SECONDS)
            .record(store_started.elapsed().as_secs_f64());

        let now = OffsetDateTime::now_utc();
        let mut announcements = Vec::with_capacity(slots.len());
        // Deliveries settled with a reject instead of the batch's ack, and whether
        // they go back to the queue.
        let mut reject: Vec<(usize, bool)> = Vec::new();
        // Deliveries refused `forbidden`: to the dead queue with their reason.
        let mut dead = Vec::new();
        // Outcomes that could not be stored: of single messages on the last
        // delivery the queue allows, of batch records at once.
        let mut given_up: Vec<(usize, ReplyTo)> = Vec::new();
        // Records of batch messages the database refused, each alone to the dead
        // queue so that the rest of its batch is acknowledged.
        let mut letters: Vec<Letter> = Vec::new();
        for (i, slot) in slots {
            match slot {
                Slot::Stored(k, reply, source) => {
                    let outcome = &outcomes[k];
                    let grouped = source.is_some();
                    let verdict = match &verdicts[k] {
                        Ok(verdict) => verdict,
                        Err(detail) => {
                            if let (Some(source), Some(sealing)) = (source, &sealing[i]) {
                                let (body, properties) = records::record_letter(
                                    &batch[i].properties,
                                    &source,
                                    sealing,
                                    &self.transit,
                                    detail,
                                );
                                letters.push(Letter {
                                    body,
                                    properties,
                                    routing_key: batch[i].routing_key.to_string(),
                                });
                                given_up.push((k, reply));
                            } else if is_last_delivery(&batch[i]) {
                                given_up.push((k, reply));
                                reject.push((i, false));
                            } else {
                                reject.push((i, true));
                            }
                            continue;
                        }
                    };
                    let trace = crate::trace::continued(&batch[i].properties, &batch[i].data);
                    let span =
                        crate::trace::submission_span(&trace, outcome.id, outcome.project_id);
                    span.in_scope(|| tracing::debug!(accepted = verdict.accepted, code = ?verdict.error_code, "stored"));
                    let status = if verdict.accepted {
                        "accepted"
                    } else {
                        "rejected"
                    };
                    metrics::counter!("kyc_worker_submissions_total", "status" => status)
                        .increment(1);
                    crate::metrics::stored(outcome.received_at, verdict.error_code, now);
                    announcements.push(Announcement {
                        event: event(outcome, verdict, now),
                        reply,
                        grouped,
                    });
                }
                Slot::Refused(announcement) => {
                    metrics::counter!("kyc_worker_submissions_total", "status" => "refused")
                        .increment(1);
                    announcements.extend(announcement.map(|a| *a));
                }
                Slot::Unreadable => {
                    metrics::counter!("kyc_worker_submissions_total", "status" => "unreadable")
                        .increment(1);
                    tracing::error!(
                        message_id = ?batch[i].properties.message_id(),
                        "an intake's sealed batch holds no readable batch: dead-lettered"
                    );
                    dead.push((&batch[i], DeadReason::Unreadable));
                }
                Slot::Forbidden {
                    submission_id,
                    idempotency_key,
                    reply,
                } => {
                    metrics::counter!("kyc_worker_submissions_total", "status" => "forbidden")
                        .increment(1);
                    // Not dropped: moved to the dead queue, reason `forbidden`.
                    dead.push((&batch[i], DeadReason::Forbidden));
                    if reply.queue.is_some() {
                        let rejection = Rejection::new(ErrorCode::Forbidden);
                        let mut event =
                            ResultEventV1::rejected(submission_id, Uuid::nil(), &rejection, now);
                        event.idempotency_key = idempotency_key;
                        announcements.push(Announcement {
                            event,
                            reply,
                            grouped: false,
                        });
                    }
                }
            }
        }

        dead_letter(publisher, &self.options.topology, &dead).await?;
        dead_letter_built(publisher, &self.options.topology, &letters).await?;
        announcements.extend(self.give_up(&outcomes, given_up, now).await?);

        announce(
            publisher,
            &self.options.topology,
            &announcements,
            self.options.group_events,
        )
        .instrument(tracing::debug_span!(
            "announce",
            events = announcements.len()
        ))
        .await?;

        // Messages that could not be stored at all go back with a reject, which
        // counts toward the queue's delivery limit; on their last delivery they
        // were announced as `processing_error` above and are rejected without
        // requeue, which dead-letters them.
        for &(i, requeue) in &reject {
            metrics::counter!("kyc_worker_poison_total").increment(1);
            if !requeue {
                metrics::counter!(crate::metrics::DEAD_LETTERED, "reason" => "delivery_limit")
                    .increment(1);
            }
            batch[i]
                .acker
                .reject(BasicRejectOptions { requeue })
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
            .find(|(i, _)| !reject.iter().any(|(r, _)| r == i))
        {
            last.1.acker.ack(BasicAckOptions { multiple: true }).await?;
            metrics::counter!(crate::metrics::ACKED).increment((batch.len() - reject.len()) as u64);
        }
        Ok(())
    }
}

impl Worker {
    /// Decides about each record of the batch message `batch[i]`.
    async fn decide_records(
        &self,
        i: usize,
        delivery: &Delivery,
        today: time::Date,
        outcomes: &mut Vec<Outcome>,
        slots: &mut Vec<(usize, Slot)>,
        sealing: &mut [Option<Sealing>],
    ) -> Result<(), BatchError> {
        match records::decide_batch(
            &delivery.properties,
            &delivery.data,
            self.options.body_limit,
            &self.directory,
            &self.transit,
            self.options.topology.prefix(),
            today,
        )
        .await?
        {
            BatchDecision::Records {
                records,
                sealing: protection,
            } => {
                sealing[i] = Some(protection);
                for record in records {
                    match record {
                        RecordDecision::Store {
                            outcome,
                            reply,
                            source,
                        } => {
                            slots.push((i, Slot::Stored(outcomes.len(), reply, Some(source))));
                            outcomes.push(*outcome);
                        }
                        RecordDecision::Refused(announcement) => {
                            slots.push((i, Slot::Refused(Some(announcement))));
                        }
                    }
                }
            }
            BatchDecision::Forbidden {
                submission_id,
                reply,
            } => slots.push((
                i,
                Slot::Forbidden {
                    submission_id,
                    idempotency_key: None,
                    reply,
                },
            )),
            BatchDecision::Refused(announcement) => slots.push((i, Slot::Refused(announcement))),
            BatchDecision::Unreadable => slots.push((i, Slot::Unreadable)),
        }
        Ok(())
    }

    /// Records `processing_error` for outcomes that could not be stored on their
    /// last allowed delivery, so that a client told 200 still learns an outcome
    /// (`docs/api.md` §6): a rejected row (it keeps no fields, so it is stored where the
    /// outcome itself was refused), and an announcement for each. A successful
    /// replay from the dead letters later replaces the row with `accepted`.
    async fn give_up(
        &self,
        outcomes: &[Outcome],
        given_up: Vec<(usize, ReplyTo)>,
        now: OffsetDateTime,
    ) -> Result<Vec<Announcement>, BatchError> {
        if given_up.is_empty() {
            return Ok(Vec::new());
        }
        let failed: Vec<Outcome> = given_up
            .iter()
            .map(|&(k, _)| Outcome {
                result: Err(Rejection::new(ErrorCode::ProcessingError)),
                ..outcomes[k].clone()
            })
            .collect();
        let verdicts = self.store(&failed).await?;
        let mut announcements = Vec::with_capacity(given_up.len());
        for ((k, reply), (failure, verdict)) in
            given_up.into_iter().zip(failed.iter().zip(verdicts))
        {
            let verdict = verdict.unwrap_or_else(|_| {
                tracing::error!(submission_id = %failure.id, "cannot store processing_error either; announcing it only");
                Verdict {
                    accepted: false,
                    error_code: Some(ErrorCode::ProcessingError),
                    message: Some(ErrorCode::ProcessingError.base_message().to_owned()),
                }
            });
            tracing::warn!(submission_id = %failure.id, "not stored: processing_error, dead-lettered");
            metrics::counter!("kyc_worker_submissions_total", "status" => "processing_error")
                .increment(1);
            // The original outcome names the userid the client sent.
            announcements.push(Announcement {
                event: event(&outcomes[k], &verdict, now),
                reply,
                grouped: false,
            });
        }
        Ok(announcements)
    }
}

/// Whether this is the last delivery the submissions queue allows: rejected with
/// requeue now, the message would be dead-lettered (the broker dead-letters once
/// its returns exceed [`kyc_bus::DELIVERY_LIMIT`]).
fn is_last_delivery(delivery: &Delivery) -> bool {
    kyc_bus::headers::delivery_count(&delivery.properties) >= kyc_bus::DELIVERY_LIMIT
}

/// Where a delivery's decision went.
enum Slot {
    /// Out of bounds (`bounds`): announced, not stored.
    Refused(Option<Box<Announcement>>),
    /// Its outcome is `outcomes[k]`; a record of a batch message carries what it
    /// is dead-lettered as if the database refuses it.
    Stored(usize, ReplyTo, Option<Box<RecordSource>>),
    Forbidden {
        submission_id: Uuid,
        idempotency_key: Option<String>,
        reply: ReplyTo,
    },
    /// An intake's sealed batch that cannot be read: dead-lettered whole.
    Unreadable,
}

fn event(outcome: &Outcome, verdict: &Verdict, at: OffsetDateTime) -> ResultEventV1 {
    let mut event = ResultEventV1::accepted(outcome.id, outcome.project_id, at);
    if !verdict.accepted {
        event.event = EventKind::Rejected;
        event.error_code = verdict.error_code;
        event.message = verdict.message.clone();
    }
    event.idempotency_key = outcome.idempotency_key.clone();
    // A create of an erased id (`docs/api.md` §15) is announced without the
    // userid it carried: that person's data is gone.
    if verdict.error_code != Some(ErrorCode::InvalidSubmission) {
        event.userid = outcome.result.as_ref().ok().and_then(|s| s.userid.clone());
    }
    event
}
