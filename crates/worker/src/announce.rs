//! Publishing result events: one per submission on the events exchange, plus a
//! copy to the requester's `reply_to` queue when asked — one message per result,
//! or, for senders that ask for it (`x-reply-mode: batch`), one message per reply
//! queue carrying all of the batch's results for it. The events of those bulk
//! senders' batch messages travel grouped too: one
//! `kyc.result-batch.v1` message per routing key (kind and project) and worker
//! batch, instead of one message per record. Everything is published on one
//! channel and awaited together (confirms in flight, not one at a time).

use crate::decide::ReplyTo;
use kyc_bus::{Outgoing, PublishError, Publisher, Topology, persistent};
use kyc_core::wire::{
    REPLY_BATCH_TYPE, RESULT_BATCH_TYPE, ResultEventV1, encode_reply_batch, encode_result_batch,
};
use std::collections::BTreeMap;

/// A correlation id and the serialised event it answers.
type Correlated<'a> = (Option<&'a str>, &'a [u8]);

/// At most this many events in one `kyc.result-batch.v1` message (a worker batch
/// can hold several batch messages of up to 1,000 records each).
const MAX_GROUPED_EVENTS: usize = 500;

/// One event to announce, and where else it should go.
#[derive(Debug)]
pub struct Announcement {
    /// The result event, published to the results exchange.
    pub event: ResultEventV1,
    /// Where the sender asked for the result too, if anywhere.
    pub reply: ReplyTo,
    /// The result of a record of a batch message: announced in a
    /// `kyc.result-batch.v1` group (when the worker groups events).
    pub grouped: bool,
}

/// Publishes every announcement, the events of batch records grouped if `group`;
/// `Err` if any event was not confirmed (the batch then stays unacknowledged and
/// is redelivered, re-announcing the stored verdicts).
pub async fn announce(
    publisher: &Publisher,
    topology: &Topology,
    announcements: &[Announcement],
    group: bool,
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

    // Batch records' events grouped per routing key: the events exchange routes on
    // kind and project, so a group goes exactly where its events would have gone.
    let mut grouped: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    let grouped_event = |a: &Announcement| group && a.grouped;
    for (a, (body, routing_key)) in announcements.iter().zip(&bodies) {
        if grouped_event(a) {
            grouped.entry(routing_key).or_default().push(body);
        }
    }
    let group_bodies: Vec<(&str, usize, Vec<u8>)> = grouped
        .iter()
        .flat_map(|(routing_key, events)| {
            events.chunks(MAX_GROUPED_EVENTS).map(|chunk| {
                (
                    *routing_key,
                    chunk.len(),
                    encode_result_batch(chunk.iter().copied()),
                )
            })
        })
        .collect();

    // Events, then plain replies, then batch replies, all in flight together.
    // Each message is counted as the events or replies it carries.
    let mut messages = Vec::with_capacity(announcements.len() + batch_bodies.len());
    let mut counts: Vec<(Count, u64)> = Vec::with_capacity(messages.capacity());
    for (a, (body, routing_key)) in announcements.iter().zip(&bodies) {
        if grouped_event(a) {
            continue;
        }
        messages.push(Outgoing {
            exchange: &exchange,
            routing_key,
            payload: body,
            properties: properties(&a.reply),
            mandatory: false,
        });
        counts.push((Count::Events, 1));
    }
    for (routing_key, events, body) in &group_bodies {
        messages.push(Outgoing {
            exchange: &exchange,
            routing_key,
            payload: body,
            properties: persistent().with_type(RESULT_BATCH_TYPE.into()),
            mandatory: false,
        });
        counts.push((Count::Events, *events as u64));
    }
    for (a, (body, _)) in announcements.iter().zip(&bodies) {
        if let (Some(queue), false) = (&a.reply.queue, a.reply.batch) {
            messages.push(reply(queue, body, properties(&a.reply)));
            counts.push((Count::Replies, 1));
        }
    }
    for (queue, body) in &batch_bodies {
        let properties = persistent().with_type(REPLY_BATCH_TYPE.into());
        messages.push(reply(queue, body, properties));
        counts.push((Count::Replies, 1));
    }
    for (outcome, (count, n)) in publisher
        .publish_all(messages)
        .await
        .into_iter()
        .zip(counts)
    {
        match (outcome, count) {
            (Ok(()), Count::Replies) => metrics::counter!(crate::metrics::REPLIES).increment(n),
            (Ok(()), Count::Events) => metrics::counter!(crate::metrics::EVENTS).increment(n),
            // A reply is mandatory, so a vanished requester shows up as a return,
            // which is fine to ignore: nobody is waiting any more. A reply queue
            // whose node went down shows up as a nack until the node is back
            // (the requester has reconnected elsewhere by then): also ignored,
            // or the batch would be retried, never acknowledged, for as long as
            // that node is away. Replies are a courtesy; the stored result and
            // the events are what count (a requester asks again: `--resume`,
            // `GET`).
            (Err(PublishError::Returned(_) | PublishError::Nacked), Count::Replies) => {
                metrics::counter!(crate::metrics::REPLIES_DROPPED).increment(n);
            }
            (Err(e), _) => return Err(e),
        }
    }
    Ok(())
}

/// What a published message counts toward.
#[derive(Clone, Copy)]
enum Count {
    Events,
    Replies,
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
