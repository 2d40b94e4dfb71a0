//! What a webhook says: events of the events exchange turned into the body every
//! endpoint receives, routed by the message's kind. Ids and outcome only, never
//! personal data.

use kyc_core::wire::{EventKind, ResultEventV1, decode_events};
use kyc_store::webhooks::NewWebhookEvent;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Namespace of the event ids (UUIDv5 of the event's type and subject), so the
/// same event read twice gets the same id, and so the same `webhook-id`.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6b79_632d_7765_6268_6f6f_6b2d_6576_7431);

/// What became of a message of the webhooks queue.
#[derive(Debug)]
pub enum Routed {
    /// Events to deliver: one for a plain result event, several for a
    /// `kyc.result-batch.v1` message.
    Events(Vec<NewWebhookEvent>),
    /// A kind of message no webhook describes (yet): acknowledged and counted.
    Unknown,
    /// A known kind whose body does not parse: acknowledged, counted and logged.
    Malformed(String),
}

/// The `webhook-id` of an event: `msg_` and its id without hyphens.
pub fn webhook_id(event_id: Uuid) -> String {
    format!("msg_{}", event_id.simple())
}

/// Routes a message of the events exchange by its routing key
/// (`<type>.<projectId>`), the type being `submission.accepted` and so on; its
/// AMQP `type` tells a single result event from a group of them.
pub fn route(routing_key: &str, message_type: Option<&str>, body: &[u8]) -> Routed {
    let kind = routing_key
        .rsplit_once('.')
        .map_or(routing_key, |(kind, _)| kind);
    match kind {
        "submission.accepted" | "submission.rejected" => match decode_events(message_type, body) {
            Ok(events) => Routed::Events(events.iter().map(submission_event).collect()),
            Err(e) => Routed::Malformed(format!("{kind}: {e}")),
        },
        // Later kinds (images, updates, deletions) get their own arm and body.
        _ => Routed::Unknown,
    }
}

/// The webhook of a result event.
pub fn submission_event(event: &ResultEventV1) -> NewWebhookEvent {
    let kind = event.event.as_str();
    let id = Uuid::new_v5(
        &EVENT_NAMESPACE,
        format!("{kind}/{}", event.submission_id).as_bytes(),
    );
    let mut data = json!({
        "submissionId": event.submission_id,
        "projectId": event.project_id,
        "status": event.event.status(),
    });
    if let Some(userid) = &event.userid {
        data["userid"] = userid.as_str().into();
    }
    if event.event == EventKind::Rejected {
        if let Some(code) = event.error_code {
            data["errorCode"] = serde_json::to_value(code).unwrap_or_default();
        }
        if let Some(message) = &event.message {
            data["message"] = message.as_str().into();
        }
    }
    let body = json!({
        "type": kind,
        "timestamp": event.at.format(&Rfc3339).unwrap_or_default(),
        "data": data,
    });
    NewWebhookEvent {
        id,
        project_id: event.project_id,
        event_type: kind.to_owned(),
        body: body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_result_event_becomes_ids_and_outcome_with_a_stable_id() {
        let mut event = ResultEventV1::accepted(
            Uuid::now_v7(),
            Uuid::now_v7(),
            datetime!(2026-12-01 10:00:00 UTC),
        );
        event.userid = Some("user-42".to_owned());
        event.idempotency_key = Some("k-1".to_owned());
        let key = event.routing_key();
        let body = serde_json::to_vec(&event).expect("json");
        let Routed::Events(first) = route(&key, None, &body) else {
            panic!("routed")
        };
        let Routed::Events(again) = route(&key, None, &body) else {
            panic!("routed")
        };
        assert_eq!(first, again);
        let [first] = first.as_slice() else {
            panic!("one event: {first:?}")
        };
        let json: serde_json::Value = serde_json::from_str(&first.body).expect("json");
        assert_eq!(json["type"], "submission.accepted");
        assert_eq!(json["timestamp"], "2026-12-01T10:00:00Z");
        assert_eq!(json["data"]["status"], "accepted");
        assert_eq!(json["data"]["userid"], "user-42");
        assert_eq!(
            json["data"]["submissionId"],
            event.submission_id.to_string()
        );
        assert_eq!(
            json["data"].as_object().map(|o| o.len()),
            Some(4),
            "nothing but ids and outcome: {json}"
        );
        assert!(matches!(
            route("image.created.x", None, b"{}"),
            Routed::Unknown
        ));
        assert!(matches!(route(&key, None, b"nope"), Routed::Malformed(_)));
    }

    #[test]
    fn a_result_batch_becomes_one_webhook_per_event_with_the_ids_single_events_get() {
        let at = datetime!(2026-12-01 10:00:00 UTC);
        let project = Uuid::now_v7();
        let events = [
            ResultEventV1::accepted(Uuid::now_v7(), project, at),
            ResultEventV1::accepted(Uuid::now_v7(), project, at),
        ];
        let bodies: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("json"))
            .collect();
        let group = kyc_core::wire::encode_result_batch(bodies.iter().map(Vec::as_slice));
        let key = events[0].routing_key();
        let Routed::Events(grouped) = route(&key, Some(kyc_core::wire::RESULT_BATCH_TYPE), &group)
        else {
            panic!("routed")
        };
        let single: Vec<NewWebhookEvent> = bodies
            .iter()
            .flat_map(|body| match route(&key, None, body) {
                Routed::Events(events) => events,
                other => panic!("routed: {other:?}"),
            })
            .collect();
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped, single, "grouped or not, the same webhooks");
        // Read without its type, a group is malformed, not silently dropped.
        assert!(matches!(route(&key, None, &group), Routed::Malformed(_)));
    }
}
