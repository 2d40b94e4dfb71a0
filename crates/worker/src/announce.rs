//! Publishing result events: one per submission on the events exchange, plus a
//! copy to the requester's `reply_to` queue when asked — one message per result,
//! or, for senders that ask for it (`x-reply-mode: batch`), one message per reply
//! queue carrying all of the batch's results for it. Everything is published
//! concurrently and awaited together (confirms in flight, not one at a time).

use crate::decide::ReplyTo;
use futures_util::future::join_all;
use kyc_bus::{Outgoing, PublishError, Publisher, Topology, persistent};
use kyc_core::wire::{BatchedReplyV1, REPLY_BATCH_TYPE, ReplyBatchV1, ResultEventV1};
use std::collections::BTreeMap;

/// One event to announce, and where else it should go.
#[derive(Debug)]
pub struct Announcement {
    pub event: ResultEventV1,
    pub reply: ReplyTo,
}

/// Publishes every announcement; `Err` if any event was not confirmed (the batch
/// then stays unacknowledged and is redelivered, re-announcing the stored verdicts).
pub async fn announce(
    publisher: &Publisher,
    topology: &Topology,
    announcements: &[Announcement],
) -> Result<(), PublishError> {
    let exchange = topology.events_exchange();
    // Serialising our own types cannot fail.
    let bodies: Vec<(Vec<u8>, String)> = announcements
        .iter()
        .map(|a| {
            (
                serde_json::to_vec(&a.event).unwrap_or_default(),
                a.event.routing_key(),
            )
        })
        .collect();
    let mut batched: BTreeMap<&str, Vec<BatchedReplyV1>> = BTreeMap::new();
    for a in announcements {
        if let (Some(queue), true) = (&a.reply.queue, a.reply.batch) {
            batched.entry(queue).or_default().push(BatchedReplyV1 {
                correlation_id: a.reply.correlation_id.clone(),
                event: a.event.clone(),
            });
        }
    }
    let batch_bodies: Vec<(&str, Vec<u8>)> = batched
        .into_iter()
        .map(|(queue, results)| {
            let body = serde_json::to_vec(&ReplyBatchV1 { results }).unwrap_or_default();
            (queue, body)
        })
        .collect();

    let events = announcements
        .iter()
        .zip(&bodies)
        .map(|(a, (body, routing_key))| {
            let exchange = exchange.as_str();
            async move {
                publisher
                    .publish(Outgoing {
                        exchange,
                        routing_key,
                        payload: body,
                        properties: properties(&a.reply),
                        mandatory: false,
                    })
                    .await?;
                match &a.reply.queue {
                    Some(queue) if !a.reply.batch => {
                        reply(publisher, queue, body, properties(&a.reply)).await
                    }
                    _ => Ok(()),
                }
            }
        });
    let batches = batch_bodies.iter().map(|(queue, body)| {
        reply(
            publisher,
            queue,
            body,
            persistent().with_type(REPLY_BATCH_TYPE.into()),
        )
    });
    let (events, batches) = tokio::join!(join_all(events), join_all(batches));
    events.into_iter().chain(batches).collect()
}

/// A reply: default exchange, routed by queue name. Mandatory, so a vanished
/// requester shows up as a return, which is fine to ignore: nobody is waiting
/// any more.
async fn reply(
    publisher: &Publisher,
    queue: &str,
    body: &[u8],
    properties: kyc_bus::lapin::BasicProperties,
) -> Result<(), PublishError> {
    let sent = publisher
        .publish(Outgoing {
            exchange: "",
            routing_key: queue,
            payload: body,
            properties,
            mandatory: true,
        })
        .await;
    match sent {
        Ok(()) | Err(PublishError::Returned(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn properties(reply: &ReplyTo) -> kyc_bus::lapin::BasicProperties {
    let properties = persistent();
    match &reply.correlation_id {
        Some(id) => properties.with_correlation_id(id.as_str().into()),
        None => properties,
    }
}
