//! Publishing result events: one per submission on the events exchange, plus a
//! copy to the requester's `reply_to` queue when asked — one message per result,
//! or, for senders that ask for it (`x-reply-mode: batch`), one message per reply
//! queue carrying all of the batch's results for it. Everything is published on
//! one channel and awaited together (confirms in flight, not one at a time).

use crate::decide::ReplyTo;
use kyc_bus::{Outgoing, PublishError, Publisher, Topology, persistent};
use kyc_core::wire::{REPLY_BATCH_TYPE, ResultEventV1, encode_reply_batch};
use std::collections::BTreeMap;

/// A correlation id and the serialised event it answers.
type Correlated<'a> = (Option<&'a str>, &'a [u8]);

/// One event to announce, and where else it should go.
#[derive(Debug)]
pub struct Announcement {
    /// The result event, published to the results exchange.
    pub event: ResultEventV1,
    /// Where the sender asked for the result too, if anywhere.
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
    let bodies: Vec<(Vec<u8>, String)> = announcements
        .iter()
        .map(|a| {
            // Writing into a `Vec` has no I/O error, and of an event's fields only
            // `at` could refuse: RFC 3339 cannot write years past 9999 or offsets
            // with seconds. `at` is this worker's clock read in UTC.
            let body = serde_json::to_vec(&a.event)
                .expect("an event stamped with the current UTC time serialises");
            (body, a.event.routing_key())
        })
        .collect();
    // Batch replies: per reply queue, the events just serialised, with their
    // correlation ids.
    let mut batched: BTreeMap<&str, Vec<Correlated>> = BTreeMap::new();
    for (a, (body, _)) in announcements.iter().zip(&bodies) {
        if let (Some(queue), true) = (&a.reply.queue, a.reply.batch) {
            batched
                .entry(queue)
                .or_default()
                .push((a.reply.correlation_id.as_deref(), body));
        }
    }
    let batch_bodies: Vec<(&str, Vec<u8>)> = batched
        .into_iter()
        .map(|(queue, results)| (queue, encode_reply_batch(results)))
        .collect();

    // Events, then plain replies, then batch replies, all in flight together.
    let mut messages = Vec::with_capacity(announcements.len() + batch_bodies.len());
    let mut is_reply = Vec::with_capacity(messages.capacity());
    for (a, (body, routing_key)) in announcements.iter().zip(&bodies) {
        messages.push(Outgoing {
            exchange: &exchange,
            routing_key,
            payload: body,
            properties: properties(&a.reply),
            mandatory: false,
        });
        is_reply.push(false);
    }
    for (a, (body, _)) in announcements.iter().zip(&bodies) {
        if let (Some(queue), false) = (&a.reply.queue, a.reply.batch) {
            messages.push(reply(queue, body, properties(&a.reply)));
            is_reply.push(true);
        }
    }
    for (queue, body) in &batch_bodies {
        let properties = persistent().with_type(REPLY_BATCH_TYPE.into());
        messages.push(reply(queue, body, properties));
        is_reply.push(true);
    }
    for (outcome, is_reply) in publisher
        .publish_all(messages)
        .await
        .into_iter()
        .zip(is_reply)
    {
        match outcome {
            Ok(()) if is_reply => metrics::counter!(crate::metrics::REPLIES).increment(1),
            Ok(()) => metrics::counter!(crate::metrics::EVENTS).increment(1),
            // A reply is mandatory, so a vanished requester shows up as a return,
            // which is fine to ignore: nobody is waiting any more.
            Err(PublishError::Returned(_)) if is_reply => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A reply: default exchange, routed by queue name, mandatory.
fn reply<'a>(
    queue: &'a str,
    body: &'a [u8],
    properties: kyc_bus::lapin::BasicProperties,
) -> Outgoing<'a> {
    Outgoing {
        exchange: "",
        routing_key: queue,
        payload: body,
        properties,
        mandatory: true,
    }
}

fn properties(reply: &ReplyTo) -> kyc_bus::lapin::BasicProperties {
    let properties = persistent();
    match &reply.correlation_id {
        Some(id) => properties.with_correlation_id(id.as_str().into()),
        None => properties,
    }
}
