//! Wire schemas (`docs/api.md` §6, §8): the result event's exact field names and the
//! routing keys.

#![allow(clippy::unwrap_used)]

use kyc_core::wire::{self, EventKind, ResultEventV1};
use kyc_core::{ErrorCode, Rejection};
use serde_json::{Value, json};
use time::macros::datetime;
use uuid::Uuid;

const SUBMISSION: Uuid = uuid::uuid!("0190f1a2-3b4c-7d5e-8f60-000000000001");
const PROJECT: Uuid = uuid::uuid!("0190f1a2-3b4c-7d5e-8f60-000000000002");
const AT: time::OffsetDateTime = datetime!(2024-06-15 12:34:56.789 UTC);

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

#[track_caller]
fn assert_round_trips(case: &str, event: &ResultEventV1) {
    let text = serde_json::to_string(event).unwrap();
    let back: ResultEventV1 = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, event, "{case}: round trip through {text}");
}

#[test]
fn an_accepted_event_has_only_the_mandatory_fields() {
    let event = ResultEventV1::accepted(SUBMISSION, PROJECT, AT);
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(
        value,
        json!({
            "event": "submission.accepted",
            "submissionId": "0190f1a2-3b4c-7d5e-8f60-000000000001",
            "projectId": "0190f1a2-3b4c-7d5e-8f60-000000000002",
            "at": "2024-06-15T12:34:56.789Z",
        })
    );
    assert_round_trips("accepted", &event);
}

#[test]
fn a_rejected_event_carries_the_code_and_message_of_the_rejection() {
    let event =
        ResultEventV1::rejected(SUBMISSION, PROJECT, &Rejection::invalid_format("email"), AT);
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(value["event"], "submission.rejected");
    assert_eq!(value["errorCode"], "invalid_format");
    assert_eq!(value["message"], "invalid format: email");
    assert_eq!(
        keys(&value),
        sorted(&[
            "event",
            "submissionId",
            "projectId",
            "errorCode",
            "message",
            "at"
        ])
    );
    assert_round_trips("rejected", &event);
}

#[test]
fn every_optional_field_uses_its_documented_name() {
    let event = ResultEventV1 {
        userid: Some("user-000123".into()),
        idempotency_key: Some("order-4711".into()),
        ..ResultEventV1::rejected(SUBMISSION, PROJECT, &ErrorCode::ProcessingError.into(), AT)
    };
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(
        keys(&value),
        sorted(&[
            "event",
            "submissionId",
            "projectId",
            "userid",
            "idempotencyKey",
            "errorCode",
            "message",
            "at"
        ])
    );
    assert_eq!(value["userid"], "user-000123");
    assert_eq!(value["idempotencyKey"], "order-4711");
    assert_eq!(value["errorCode"], "processing_error");
    assert_eq!(value["message"], "Failed to complete migration");
    assert_round_trips("all fields", &event);
}

#[test]
fn a_documented_event_text_reads_into_the_type() {
    let text = r#"{"event":"submission.rejected","submissionId":"0190f1a2-3b4c-7d5e-8f60-000000000001",
        "projectId":"0190f1a2-3b4c-7d5e-8f60-000000000002","userid":"u1","idempotencyKey":"k1",
        "errorCode":"invalid_admin","message":"Invalid admin","at":"2024-06-15T14:34:56.789+02:00"}"#;
    let event: ResultEventV1 = serde_json::from_str(text).unwrap();
    assert_eq!(event.event, EventKind::Rejected);
    assert_eq!(event.submission_id, SUBMISSION);
    assert_eq!(event.project_id, PROJECT);
    assert_eq!(event.userid.as_deref(), Some("u1"));
    assert_eq!(event.idempotency_key.as_deref(), Some("k1"));
    assert_eq!(event.error_code, Some(ErrorCode::InvalidAdmin));
    assert_eq!(event.message.as_deref(), Some("Invalid admin"));
    assert_eq!(event.at, AT, "the same instant in another offset");
}

#[test]
fn an_unknown_event_kind_does_not_read() {
    let text = r#"{"event":"submission.lost","submissionId":"0190f1a2-3b4c-7d5e-8f60-000000000001",
        "projectId":"0190f1a2-3b4c-7d5e-8f60-000000000002","at":"2024-06-15T12:34:56Z"}"#;
    assert!(serde_json::from_str::<ResultEventV1>(text).is_err());
}

#[test]
fn routing_keys_name_the_outcome_and_the_project() {
    let accepted = ResultEventV1::accepted(SUBMISSION, PROJECT, AT);
    let rejected =
        ResultEventV1::rejected(SUBMISSION, PROJECT, &ErrorCode::InvalidAdmin.into(), AT);
    assert_eq!(
        accepted.routing_key(),
        "submission.accepted.0190f1a2-3b4c-7d5e-8f60-000000000002"
    );
    assert_eq!(
        rejected.routing_key(),
        "submission.rejected.0190f1a2-3b4c-7d5e-8f60-000000000002"
    );
    assert_eq!(
        wire::routing_key(EventKind::Accepted, PROJECT),
        accepted.routing_key()
    );
    assert_eq!(wire::SUBMISSION_ROUTING_KEY, "submission.v1");
}

#[test]
fn event_kinds_name_their_status_words() {
    assert_eq!(EventKind::Accepted.as_str(), "submission.accepted");
    assert_eq!(EventKind::Rejected.as_str(), "submission.rejected");
    assert_eq!(EventKind::Accepted.status(), "accepted");
    assert_eq!(EventKind::Rejected.status(), "rejected");
}

#[test]
fn amqp_header_names_are_the_documented_ones() {
    assert_eq!(wire::HEADER_API_KEY, "x-api-key");
    assert_eq!(wire::HEADER_SUBMISSION_ID, "x-submission-id");
    assert_eq!(wire::HEADER_RECEIVED_AT, "x-received-at");
    assert_eq!(wire::HEADER_IDEMPOTENCY_KEY, "x-idempotency-key");
}

#[test]
fn a_plain_reply_is_one_event_with_the_message_correlation_id() {
    let event = ResultEventV1::accepted(SUBMISSION, PROJECT, AT);
    let body = serde_json::to_vec(&event).unwrap();
    let results = wire::decode_reply(None, Some("7"), &body).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].correlation_id.as_deref(), Some("7"));
    assert_eq!(results[0].event, event);
}

#[test]
fn a_batch_reply_carries_each_result_with_its_own_correlation_id() {
    let accepted = ResultEventV1::accepted(SUBMISSION, PROJECT, AT);
    let rejected =
        ResultEventV1::rejected(SUBMISSION, PROJECT, &Rejection::invalid_format("email"), AT);
    let batch = wire::ReplyBatchV1 {
        results: vec![
            wire::BatchedReplyV1 {
                correlation_id: Some("1".into()),
                event: accepted.clone(),
            },
            wire::BatchedReplyV1 {
                correlation_id: None,
                event: rejected.clone(),
            },
        ],
    };
    let body = serde_json::to_vec(&batch).unwrap();
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["results"][0]["correlationId"], "1");
    assert_eq!(value["results"][1]["event"]["errorCode"], "invalid_format");
    assert!(value["results"][1].get("correlationId").is_none());

    // The message-level correlation id does not apply to a batch.
    let results = wire::decode_reply(Some(wire::REPLY_BATCH_TYPE), Some("x"), &body).unwrap();
    assert_eq!(results, batch.results);
    // Read as a plain event, a batch is not one.
    assert!(wire::decode_reply(None, None, &body).is_err());
}

#[test]
fn an_encoded_batch_reads_back_as_the_same_results() {
    let accepted = ResultEventV1::accepted(SUBMISSION, PROJECT, AT);
    let mut rejected =
        ResultEventV1::rejected(SUBMISSION, PROJECT, &Rejection::invalid_format("email"), AT);
    rejected.message = Some("a \"quoted\" message".into());
    let bodies = [
        serde_json::to_vec(&accepted).unwrap(),
        serde_json::to_vec(&rejected).unwrap(),
    ];
    let body = wire::encode_reply_batch([
        (Some("line \"7\""), bodies[0].as_slice()),
        (None, bodies[1].as_slice()),
    ]);
    let results = wire::decode_reply(Some(wire::REPLY_BATCH_TYPE), None, &body).unwrap();
    assert_eq!(
        results,
        vec![
            wire::BatchedReplyV1 {
                correlation_id: Some("line \"7\"".into()),
                event: accepted,
            },
            wire::BatchedReplyV1 {
                correlation_id: None,
                event: rejected,
            },
        ]
    );
    let empty = wire::encode_reply_batch(std::iter::empty());
    assert_eq!(
        wire::decode_reply(Some(wire::REPLY_BATCH_TYPE), None, &empty).unwrap(),
        vec![]
    );
}

#[test]
fn a_result_batch_event_reads_back_as_the_events_it_was_built_from() {
    let accepted = ResultEventV1::accepted(SUBMISSION, PROJECT, AT);
    let mut other = ResultEventV1::accepted(PROJECT, PROJECT, AT);
    other.idempotency_key = Some("k \"1\"".into());
    let bodies = [
        serde_json::to_vec(&accepted).unwrap(),
        serde_json::to_vec(&other).unwrap(),
    ];
    let body = wire::encode_result_batch(bodies.iter().map(Vec::as_slice));
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["events"][1]["idempotencyKey"], "k \"1\"");
    let events = wire::decode_events(Some(wire::RESULT_BATCH_TYPE), &body).unwrap();
    assert_eq!(events, vec![accepted.clone(), other]);
    // A plain event (no type, or another type) is one event; a batch read as a
    // plain event is not one.
    assert_eq!(
        wire::decode_events(None, &bodies[0]).unwrap(),
        vec![accepted]
    );
    assert!(wire::decode_events(None, &body).is_err());
    assert!(wire::decode_events(Some(wire::RESULT_BATCH_TYPE), &bodies[0]).is_err());
}

// ---------------------------------------------------------------------------
// Submission headers
// ---------------------------------------------------------------------------

use std::collections::BTreeMap;
use wire::{ReplyMode, SubmissionHeadersV2};

fn all_headers() -> SubmissionHeadersV2<'static> {
    SubmissionHeadersV2 {
        api_key: Some("kyc_live_abc"),
        submission_id: Some(SUBMISSION),
        project_id: Some(PROJECT),
        transit_key_id: Some("t1"),
        received_at: Some(AT),
        idempotency_key: Some("order-17"),
        reply_mode: ReplyMode::Batch,
        traceparent: kyc_core::trace::TraceParent::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    }
}

fn as_map(pairs: Vec<(&'static str, String)>) -> BTreeMap<&'static str, String> {
    let map: BTreeMap<_, _> = pairs.iter().cloned().collect();
    assert_eq!(map.len(), pairs.len(), "no header twice");
    map
}

/// The exact names and values on the wire: direct AMQP publishers and older
/// workers depend on them.
#[test]
fn submission_headers_encode_to_the_documented_names_and_values() {
    let encoded = as_map(all_headers().encode());
    let expected: BTreeMap<&str, String> = [
        ("x-api-key", "kyc_live_abc"),
        ("x-submission-id", "0190f1a2-3b4c-7d5e-8f60-000000000001"),
        ("x-project-id", "0190f1a2-3b4c-7d5e-8f60-000000000002"),
        ("x-transit-key-id", "t1"),
        ("x-received-at", "2024-06-15T12:34:56.789Z"),
        ("x-idempotency-key", "order-17"),
        ("x-reply-mode", "batch"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    assert_eq!(encoded, expected);
}

#[test]
fn absent_headers_are_not_sent() {
    assert!(SubmissionHeadersV2::default().encode().is_empty());
    let direct = SubmissionHeadersV2 {
        api_key: Some("k"),
        ..SubmissionHeadersV2::default()
    };
    assert_eq!(direct.encode(), vec![("x-api-key", "k".to_owned())]);
}

#[test]
fn submission_headers_round_trip() {
    let encoded = as_map(all_headers().encode());
    let decoded = SubmissionHeadersV2::decode(|name| encoded.get(name).map(String::as_str));
    assert_eq!(decoded, all_headers());
}

#[test]
fn unreadable_header_values_read_as_absent() {
    let sent: BTreeMap<&str, &str> = [
        ("x-api-key", "k"),
        ("x-submission-id", "not-a-uuid"),
        ("x-project-id", ""),
        ("x-received-at", "yesterday"),
        ("x-reply-mode", "BATCH"),
    ]
    .into();
    let decoded = SubmissionHeadersV2::decode(|name| sent.get(name).copied());
    assert_eq!(
        decoded,
        SubmissionHeadersV2 {
            api_key: Some("k"),
            ..SubmissionHeadersV2::default()
        }
    );
    assert_eq!(decoded.reply_mode, ReplyMode::PerMessage);
}

#[test]
fn submission_headers_do_not_print_the_api_key() {
    let printed = format!("{:?}", all_headers());
    assert!(!printed.contains("kyc_live_abc"), "{printed}");
    assert!(printed.contains("order-17"), "{printed}");
}
