//! What a webhook says: events of the events exchange turned into the body every
//! endpoint receives, routed by the message's kind. Ids and outcome only, never
//! personal data.

use kyc_core::wire::{EventKind, ResultEventV1};
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
    /// An event to deliver.
    Event(NewWebhookEvent),
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
/// (`<type>.<projectId>`), the type being `submission.accepted` and so on.
pub fn route(routing_key: &str, body: &[u8]) -> Routed {
    let kind = routing_key
        .rsplit_once('.')
        .map_or(routing_key, |(kind, _)| kind);
    match kind {
        "submission.accepted" | "submission.rejected" => {
            match serde_json::from_slice::<ResultEventV1>(body) {
                Ok(event) => Routed::Event(submission_event(&event)),
                Err(e) => Routed::Malformed(format!("{kind}: {e}")),
            }
        }
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
        let Routed::Event(first) = route(&key, &body) else {
            panic!("routed")
        };
        let Routed::Event(again) = route(&key, &body) else {
            panic!("routed")
        };
        assert_eq!(first, again);
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
        assert!(matches!(route("image.created.x", b"{}"), Routed::Unknown));
        assert!(matches!(route(&key, b"nope"), Routed::Malformed(_)));
    }
}
