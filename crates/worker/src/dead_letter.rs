//! Dead-lettering by the worker itself: a message that can never be stored is
//! moved to the dead queue with a reason, never acknowledged and dropped.
//!
//! Today that is a message the worker refuses as `forbidden`: a direct message
//! whose `x-api-key` is missing, unknown or expired (after a rotation's grace
//! period). Nothing can be stored for it (a row belongs to a project), but the
//! message may be someone's data that a key mix-up kept out; in the dead queue an
//! operator sees it (`kycctl dlq list`, reason `forbidden`) and can replay it
//! once the sender has a valid key — or let it expire with the queue's bounds.
//!
//! The message is republished as it came (body, properties and headers, minus
//! the broker's delivery bookkeeping) to the dead-letter exchange with the header
//! [`headers::DEAD_REASON`], through the confirmed publish path. Only once the
//! broker has confirmed it is the delivery acknowledged (by the batch): a crash
//! in between dead-letters it twice, never zero times.

use kyc_bus::lapin::BasicProperties;
use kyc_bus::lapin::message::Delivery;
use kyc_bus::lapin::types::{AMQPValue, FieldTable, LongString};
use kyc_bus::{Outgoing, PublishError, Publisher, Topology, headers};

/// Why a worker dead-lettered a message (the value of [`headers::DEAD_REASON`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// No valid API key: missing, unknown, or expired.
    Forbidden,
    /// One record of a batch message that the database refused (not a
    /// validation rejection): dead-lettered alone, as a batch of one record, so
    /// the rest of its batch is stored (`records`).
    Unstorable,
    /// An image reference that does not open under a transit key (forged,
    /// altered or unsealed; `images`).
    Unsealed,
    /// An intake's sealed batch that opens under its transit key but holds no
    /// readable batch (an encoding this worker does not know, or no batch
    /// inside): the intake answered 200 for its records, so the message is
    /// kept whole for a worker that can read it (`kycctl dlq replay`).
    Unreadable,
}

impl DeadReason {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Forbidden => "forbidden",
            DeadReason::Unstorable => "unstorable",
            DeadReason::Unsealed => "unsealed",
            DeadReason::Unreadable => "unreadable",
        }
    }
}

/// The properties of a message as it goes to the dead queue: its own, without
/// the broker's delivery bookkeeping, plus the reason.
pub fn dead_properties(properties: &BasicProperties, reason: DeadReason) -> BasicProperties {
    let mut kept = FieldTable::default();
    if let Some(table) = properties.headers() {
        for (name, value) in table.inner() {
            if !headers::is_broker_bookkeeping(name.as_str()) {
                kept.insert(name.clone(), value.clone());
            }
        }
    }
    kept.insert(
        headers::DEAD_REASON.into(),
        AMQPValue::LongString(LongString::from(reason.as_str())),
    );
    // Persistent whatever the sender asked: a dead letter must survive a broker
    // restart like the rest of the dead queue.
    properties.clone().with_headers(kept).with_delivery_mode(2)
}

/// Publishes each delivery to the dead-letter exchange with its reason and waits
/// for every confirm; `Err` if any was not confirmed (the batch is then retried
/// and nothing acknowledged).
pub async fn dead_letter(
    publisher: &Publisher,
    topology: &Topology,
    letters: &[(&Delivery, DeadReason)],
) -> Result<(), PublishError> {
    if letters.is_empty() {
        return Ok(());
    }
    let exchange = topology.dead_exchange();
    let messages = letters
        .iter()
        .map(|(delivery, reason)| Outgoing {
            exchange: &exchange,
            routing_key: delivery.routing_key.as_str(),
            payload: &delivery.data,
            properties: dead_properties(&delivery.properties, *reason),
            // The dead exchange is a fanout bound to the dead queue: a return
            // means the topology is broken, and the message must stay put.
            mandatory: true,
        })
        .collect();
    for result in publisher.publish_all(messages).await {
        result?;
    }
    for (_, reason) in letters {
        metrics::counter!(crate::metrics::DEAD_LETTERED, "reason" => reason.as_str()).increment(1);
    }
    Ok(())
}

/// A message built by the worker for the dead queue (a record of a batch
/// message, `records::record_letter`): body, properties with the reason, and the
/// routing key it came with.
#[derive(Debug)]
pub(crate) struct Letter {
    pub(crate) body: Vec<u8>,
    pub(crate) properties: BasicProperties,
    pub(crate) routing_key: String,
}

/// Publishes built letters to the dead-letter exchange, confirmed, like
/// [`dead_letter`].
pub(crate) async fn dead_letter_built(
    publisher: &Publisher,
    topology: &Topology,
    letters: &[Letter],
) -> Result<(), PublishError> {
    if letters.is_empty() {
        return Ok(());
    }
    let exchange = topology.dead_exchange();
    let messages = letters
        .iter()
        .map(|letter| Outgoing {
            exchange: &exchange,
            routing_key: letter.routing_key.as_str(),
            payload: &letter.body,
            properties: letter.properties.clone(),
            mandatory: true,
        })
        .collect();
    for result in publisher.publish_all(messages).await {
        result?;
    }
    metrics::counter!(crate::metrics::DEAD_LETTERED, "reason" => DeadReason::Unstorable.as_str())
        .increment(letters.len() as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyc_core::wire::HEADER_API_KEY;

    #[test]
    fn the_reason_is_added_and_the_broker_bookkeeping_dropped() {
        let mut table = FieldTable::default();
        table.insert(
            HEADER_API_KEY.into(),
            AMQPValue::LongString(LongString::from("kyc_old")),
        );
        table.insert(headers::DELIVERY_COUNT.into(), AMQPValue::LongLongInt(3));
        let properties = BasicProperties::default()
            .with_headers(table)
            .with_message_id("m-1".into());
        let dead = dead_properties(&properties, DeadReason::Forbidden);
        assert_eq!(headers::get(&dead, headers::DEAD_REASON), Some("forbidden"));
        assert_eq!(headers::get(&dead, HEADER_API_KEY), Some("kyc_old"));
        assert_eq!(headers::delivery_count(&dead), 0);
        assert_eq!(dead.message_id().as_ref().map(|m| m.as_str()), Some("m-1"));
        assert_eq!(*dead.delivery_mode(), Some(2));
    }
}
