//! Publishing result events: one per submission on the events exchange, plus a
//! copy to the requester's `reply_to` queue when asked. All of a batch's events
//! are published concurrently and awaited together (confirms in flight, not one
//! at a time).

use crate::decide::ReplyTo;
use futures_util::future::join_all;
use kyc_bus::{Outgoing, PublishError, Publisher, Topology, persistent};
use kyc_core::wire::ResultEventV1;

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
    let bodies: Vec<(Vec<u8>, String)> = announcements
        .iter()
        .map(|a| {
            // Serialising our own event type cannot fail.
            (
                serde_json::to_vec(&a.event).unwrap_or_default(),
                a.event.routing_key(),
            )
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
                if let Some(queue) = &a.reply.queue {
                    // Default exchange, routed by queue name. Mandatory, so a vanished
                    // requester shows up as a return, which is fine to ignore: nobody
                    // is waiting any more.
                    let reply = publisher
                        .publish(Outgoing {
                            exchange: "",
                            routing_key: queue,
                            payload: body,
                            properties: properties(&a.reply),
                            mandatory: true,
                        })
                        .await;
                    match reply {
                        Ok(()) | Err(PublishError::Returned(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        });
    join_all(events).await.into_iter().collect()
}

fn properties(reply: &ReplyTo) -> kyc_bus::lapin::BasicProperties {
    let properties = persistent();
    match &reply.correlation_id {
        Some(id) => properties.with_correlation_id(id.as_str().into()),
        None => properties,
    }
}
