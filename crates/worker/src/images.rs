//! The images lane: image references (the intake's claim checks,
//! `docs/api.md` §16) from `<prefix>.images` into `submission_images`.
//!
//! Per delivery: open the transit seal (a reference that does not open, or
//! whose sealed ids disagree with its headers, goes to the dead queue with
//! `x-kyc-dead-reason: unsealed`); record it in PostgreSQL while the submission
//! exists (`kyc_store::images`); after the commit delete the object it replaced
//! — or its own object, when the submission is gone or a newer image of the
//! kind is stored; publish `submission.image_stored` with a confirm; ack last.
//! A crash anywhere before the ack redelivers the reference, which then finds
//! its row and announces again. Database and broker trouble is retried with
//! back-off, the delivery held meanwhile.

use crate::Worker;
use crate::dead_letter::{DeadReason, dead_letter};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use kyc_bus::lapin::message::Delivery;
use kyc_bus::lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions};
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::{Outgoing, Publisher, persistent};
use kyc_core::transit::SealedIds;
use kyc_core::wire::{ImageReferenceV1, ImageStoredEventV1};
use kyc_images::ImageStore;
use kyc_store::images::Recorded;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Image references the broker sends ahead on the images lane, and handled at
/// once (each a small transaction, an object delete at most, and a confirm).
const IMAGES_PREFETCH: u16 = 16;

/// What became of one reference, for the metrics.
#[derive(Debug, Clone, Copy)]
enum Handled {
    Stored,
    Unused,
    DeadLettered,
}

impl Worker {
    /// Consumes the images queue on a channel of its own until `stop`.
    pub(crate) async fn consume_images(
        &self,
        images: &ImageStore,
        publisher: &Publisher,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let o = &self.options;
        let queue = o.topology.images_queue();
        let Some(channel) = publisher
            .link()
            .consumer_channel(&o.topology, IMAGES_PREFETCH)
            .await?
        else {
            anyhow::bail!("the broker connection went down");
        };
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %queue, "consuming");
        // References are independent (the store orders two of one submission
        // and kind by their receive time), so up to the prefetch are handled at
        // once: each waits on its own transaction and confirm, not on the others.
        let result = async {
            let mut handling = FuturesUnordered::new();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return Ok::<(), anyhow::Error>(()),
                    Some(handled) = handling.next(), if !handling.is_empty() => handled?,
                    next = consumer.next(), if handling.len() < usize::from(IMAGES_PREFETCH) => {
                        let Some(delivery) = next else {
                            anyhow::bail!("the images consumer was cancelled by the broker");
                        };
                        handling.push(self.settle_image(delivery?, images, publisher, stop));
                    }
                }
            }
        }
        .await;
        let _ = channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await;
        kyc_bus::close_channel(&channel, "bye").await;
        result
    }

    /// Handles one reference, retrying with back-off while the database or the
    /// broker does not answer, then acknowledges it. On `stop` it returns
    /// without the ack: the reference goes back to the queue.
    async fn settle_image(
        &self,
        delivery: Delivery,
        images: &ImageStore,
        publisher: &Publisher,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut delays = kyc_bus::backoff();
        loop {
            match self.handle_image(&delivery, images, publisher).await {
                Ok(handled) => {
                    metrics::counter!("kyc_worker_images_total", "outcome" => match handled {
                        Handled::Stored => "stored",
                        Handled::Unused => "unused",
                        Handled::DeadLettered => "dead_lettered",
                    })
                    .increment(1);
                    break;
                }
                Err(e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(error = %e, ?delay, "image reference not handled; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Handles one reference up to (not including) its ack. `Err` is worth a
    /// retry: the database or the broker did not answer.
    async fn handle_image(
        &self,
        delivery: &Delivery,
        images: &ImageStore,
        publisher: &Publisher,
    ) -> anyhow::Result<Handled> {
        let Some(reference) = self.open_reference(delivery) else {
            tracing::warn!("image reference does not open under a transit key; dead-lettered");
            dead_letter(
                publisher,
                &self.options.topology,
                &[(delivery, DeadReason::Unsealed)],
            )
            .await?;
            return Ok(Handled::DeadLettered);
        };
        let span = tracing::info_span!("image", submission_id = %reference.submission_id, project_id = %reference.project_id, kind = %reference.kind);
        let _entered = span.enter();
        let at = match self.store.record_image(&reference).await? {
            Recorded::Stored { replaced, at } => {
                if let Some(old) = replaced {
                    images.delete_best_effort(&old).await;
                }
                at
            }
            Recorded::AlreadyStored { at } => at,
            Recorded::Superseded | Recorded::NoSubmission => {
                images.delete_best_effort(&reference.object_key).await;
                tracing::debug!("image reference unused");
                return Ok(Handled::Unused);
            }
        };
        let event = ImageStoredEventV1::new(&reference, at);
        let body = serde_json::to_vec(&event)?;
        let exchange = self.options.topology.events_exchange();
        publisher
            .publish(Outgoing {
                exchange: &exchange,
                routing_key: &event.routing_key(),
                payload: &body,
                properties: persistent(),
                mandatory: false,
            })
            .await?;
        Ok(Handled::Stored)
    }

    /// The reference a delivery carries, if it opens under a transit key and
    /// its sealed content agrees with its sealed headers.
    fn open_reference(&self, delivery: &Delivery) -> Option<ImageReferenceV1> {
        let headers = kyc_bus::headers::decode(&delivery.properties);
        let ids = SealedIds {
            submission_id: headers.submission_id?,
            project_id: headers.project_id?,
            received_at: headers.received_at?,
            idempotency_key: None,
        };
        let plain = self
            .transit
            .open_image(headers.transit_key_id?, &ids, &delivery.data)?;
        let reference: ImageReferenceV1 = serde_json::from_slice(&plain).ok()?;
        (reference.submission_id == ids.submission_id
            && reference.project_id == ids.project_id
            && reference.received_at == ids.received_at
            && kyc_images::is_object_key(&reference.object_key))
        .then_some(reference)
    }
}
