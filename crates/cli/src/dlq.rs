//! `kycctl dlq list|replay`: the dead-letter queue `P.submissions.dead`.
//!
//! Messages land there when they exceed the submissions queue's delivery limit
//! (a message no worker could finish; the broker's `x-death` says so), or when a
//! worker dead-letters a direct message itself, naming why in the
//! `x-kyc-dead-reason` header (e.g. `forbidden`: its API key was unknown or
//! expired). The queue is bounded in length and age (`docs/operations.md`). Listing shows identifiers and the broker's
//! death records — never the body, which holds personal data. Replaying publishes
//! a message back to the submissions exchange (with confirms) and only then
//! removes it from the dead queue, so a crash mid-replay duplicates at worst, and
//! the worker's `ON CONFLICT DO NOTHING` absorbs a duplicate.

use anyhow::Context;
use kyc_bus::lapin::message::BasicGetMessage;
use kyc_bus::lapin::options::{BasicAckOptions, BasicGetOptions};
use kyc_bus::lapin::types::{AMQPValue, FieldTable};
use kyc_bus::lapin::{BasicProperties, Channel, Connection};
use kyc_bus::{ConfirmChannel, Outgoing, Topology, headers};
use kyc_config::Settings;
use kyc_core::wire::{SUBMISSION_BATCH_ROUTING_KEY, SUBMISSION_BATCH_TYPE, SUBMISSION_ROUTING_KEY};
use secrecy::ExposeSecret;
use serde::Serialize;
use std::collections::HashSet;

/// What `dlq list` shows of one dead message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The submission id the intake assigned, else the `message_id`, else a digest
    /// of the body: what `dlq replay` takes.
    pub id: String,
    /// How often the message died (the broker's `x-death` count).
    pub deaths: i64,
    /// Why it died: the worker's `x-kyc-dead-reason` (e.g. `forbidden`), else
    /// the broker's first death reason (e.g. `delivery_limit`).
    pub reason: String,
    /// The queue it died in.
    pub queue: String,
}

/// Which messages to replay.
#[derive(Debug, Clone)]
pub enum Selection {
    All,
    Ids(HashSet<String>),
}

/// Up to `limit` dead messages, oldest first. The messages stay in the queue.
pub async fn list(settings: &Settings, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
    let (connection, channel, topology) = open(settings).await?;
    let mut letters = Vec::new();
    while letters.len() < limit {
        let Some(message) = get(&channel, &topology).await? else {
            break;
        };
        letters.push(describe(&message, &topology));
    }
    // Nothing was acknowledged: closing the channel returns every message.
    close(connection, channel).await;
    Ok(letters)
}

/// Publishes the selected dead messages back to the submissions exchange and
/// removes them from the dead queue; returns how many were replayed.
pub async fn replay(settings: &Settings, selection: &Selection) -> anyhow::Result<u64> {
    let (connection, channel, topology) = open(settings).await?;
    let publisher = ConfirmChannel::open(&connection, settings.amqp.confirm_timeout())
        .await
        .context("opening a confirm channel")?;
    let exchange = topology.submissions_exchange();
    // Every message is fetched once: those not replayed stay unacknowledged and
    // return to the queue when the channel closes.
    let mut replayed = 0;
    while let Some(message) = get(&channel, &topology).await? {
        let letter = describe(&message, &topology);
        if let Selection::Ids(ids) = selection
            && !ids.contains(&letter.id)
        {
            continue;
        }
        // Mandatory: a message the submissions queue does not take stays dead.
        publisher
            .publish(Outgoing {
                exchange: &exchange,
                // A batch message goes back to the bulk lane.
                routing_key: if message.delivery.properties.kind().as_ref().map(|k| k.as_str())
                    == Some(SUBMISSION_BATCH_TYPE)
                {
                    SUBMISSION_BATCH_ROUTING_KEY
                } else {
                    SUBMISSION_ROUTING_KEY
                },
                payload: &message.delivery.data,
                properties: revived(&message.delivery.properties),
                mandatory: true,
            })
            .await
            .with_context(|| {
                format!(
                    "the broker did not confirm the replayed message {}; it stays in the dead queue",
                    letter.id
                )
            })?;
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await?;
        replayed += 1;
    }
    close(connection, channel).await;
    Ok(replayed)
}

async fn open(settings: &Settings) -> anyhow::Result<(Connection, Channel, Topology)> {
    let topology = Topology::new(settings.amqp.prefix.clone()).with_dead_letter_bounds(
        kyc_bus::DeadLetterBounds {
            max_length: settings.amqp.dead_letter_max_length,
            ttl_ms: settings.amqp.dead_letter_ttl_ms,
        },
    );
    let connection = kyc_bus::connect(settings.amqp.url.expose_secret(), "kycctl-dlq")
        .await
        .context("connecting to RabbitMQ")?;
    // The operator user may only check that the topology exists.
    topology.ensure(&connection).await?;
    let channel = connection.create_channel().await?;
    Ok((connection, channel, topology))
}

async fn get(channel: &Channel, topology: &Topology) -> anyhow::Result<Option<BasicGetMessage>> {
    Ok(channel
        .basic_get(
            topology.dead_queue().into(),
            BasicGetOptions { no_ack: false },
        )
        .await?)
}

async fn close(connection: Connection, channel: Channel) {
    kyc_bus::close_channel(&channel, "done").await;
    kyc_bus::close(&connection, "done").await;
}

/// What `list` shows of a message: identifiers and why it died, never the body
/// nor any header but the ids and death records.
fn describe(message: &BasicGetMessage, topology: &Topology) -> DeadLetter {
    let properties = &message.delivery.properties;
    let id = headers::decode_message(properties, &message.delivery.data)
        .submission_id
        .map(|id| id.to_string())
        .or_else(|| {
            properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_owned())
        })
        .unwrap_or_else(|| kyc_core::id::content_key(&message.delivery.data));
    let first_death =
        properties
            .headers()
            .as_ref()
            .and_then(|h| match h.inner().get(headers::DEATH) {
                Some(AMQPValue::FieldArray(deaths)) => deaths.as_slice().first().cloned(),
                _ => None,
            });
    let field = |name: &str| -> Option<AMQPValue> {
        match &first_death {
            Some(AMQPValue::FieldTable(t)) => t.inner().get(name).cloned(),
            _ => None,
        }
    };
    let text = |v: Option<AMQPValue>| match v {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_owned(),
        _ => String::new(),
    };
    let deaths = match field("count") {
        Some(AMQPValue::LongLongInt(n)) => n,
        Some(AMQPValue::LongInt(n)) => i64::from(n),
        _ => 0,
    };
    // Dead-lettered by a worker (which never lets the broker count it), taken
    // from the submissions queue.
    if let Some(reason) = headers::get(properties, headers::DEAD_REASON)
        && first_death.is_none()
    {
        return DeadLetter {
            id,
            deaths: 1,
            reason: reason.to_owned(),
            queue: if properties.kind().as_ref().map(|k| k.as_str()) == Some(SUBMISSION_BATCH_TYPE)
            {
                topology.bulk_queue()
            } else {
                topology.submissions_queue()
            },
        };
    }
    DeadLetter {
        id,
        deaths,
        reason: text(field("reason")),
        queue: text(field("queue")),
    }
}

/// The message's properties without the broker's death and delivery bookkeeping,
/// so the replayed message starts with a fresh delivery count.
fn revived(properties: &BasicProperties) -> BasicProperties {
    let mut kept = FieldTable::default();
    if let Some(headers) = properties.headers() {
        for (name, value) in headers.inner() {
            // The worker's dead reason goes too: the replayed message is alive.
            if !headers::is_broker_bookkeeping(name.as_str())
                && name.as_str() != headers::DEAD_REASON
                && name.as_str() != headers::DEAD_DETAIL
            {
                kept.insert(name.clone(), value.clone());
            }
        }
    }
    properties.clone().with_headers(kept)
}
