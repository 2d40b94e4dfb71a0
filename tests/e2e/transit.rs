//! Transit sealing (`docs/api.md` §10): nothing secret rests on the broker, and a
//! worker trusts ids only from messages an intake sealed. The trust boundaries
//! around it are in `transit_claims`.

use kyc_bus::lapin::options::BasicGetOptions;
use kyc_bus::lapin::types::{AMQPValue, LongString};
use kyc_bus::lapin::{BasicProperties, Channel};
use kyc_bus::{Topology, headers};
use kyc_core::envelope::{EnvelopeKey, encrypt_request};
use kyc_core::wire::{
    EventKind, HEADER_PROJECT_ID, HEADER_RECEIVED_AT, HEADER_SUBMISSION_ID, HEADER_TRANSIT_KEY_ID,
    TRANSIT_CONTENT_TYPE, TRANSIT_V2_CONTENT_TYPE,
};
use kyc_testkit::amqp::{self, Tap, publish_submission, with_api_key};
use kyc_testkit::{Api, TEST_TRANSIT_KEY_ID, TestEnv, full_record, record};
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Takes the next message off the submissions queue (removing it), failing the
/// test if none arrives within `WAIT`.
async fn take_queued(channel: &Channel, topology: &Topology) -> (BasicProperties, Vec<u8>) {
    kyc_testkit::eventually(WAIT, "a queued submission message", || async {
        let got = channel
            .basic_get(
                topology.submissions_queue().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic_get")?;
        Some((got.delivery.properties.clone(), got.delivery.data.clone()))
    })
    .await
}

/// Every header's name and value as bytes (values of any type, printed).
fn header_bytes(properties: &BasicProperties) -> Vec<(String, Vec<u8>)> {
    let Some(table) = properties.headers().as_ref() else {
        return Vec::new();
    };
    table
        .inner()
        .iter()
        .map(|(name, value)| {
            let bytes = match value {
                AMQPValue::LongString(s) => s.as_bytes().to_vec(),
                AMQPValue::ShortString(s) => s.as_str().as_bytes().to_vec(),
                other => format!("{other:?}").into_bytes(),
            };
            (name.to_string(), bytes)
        })
        .collect()
}

/// `properties` with header `name` set to `value`.
fn with_header(properties: &BasicProperties, name: &str, value: &str) -> BasicProperties {
    let mut table = properties.headers().clone().unwrap_or_default();
    table.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    properties.clone().with_headers(table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_carry_neither_the_api_key_nor_the_personal_numbers() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let (_connection, channel) = amqp::channel(&env.topology).await;

    let record = full_record();
    let identity = record["identityNumber"].as_str().unwrap().to_owned();
    let document = record["documentNumber"].as_str().unwrap().to_owned();
    let plain = serde_json::to_vec(&record).unwrap();
    let cases = [
        ("plain", plain.clone()),
        ("enveloped", encrypt_request(&key, &plain)),
    ];
    let mut requeue = Vec::new();
    for (case, body) in cases {
        let reply = api.submit_raw(Some(&key), body, &[]).await;
        assert_eq!(reply.status, 200, "{case}: {:?}", reply.body);
        let (properties, body) = take_queued(&channel, &env.topology).await;

        let secrets = [
            ("the API key", key.as_bytes()),
            ("identityNumber", identity.as_bytes()),
            ("documentNumber", document.as_bytes()),
        ];
        for (what, secret) in secrets {
            assert!(!contains(&body, secret), "{case}: {what} in the body");
            for (name, value) in header_bytes(&properties) {
                assert!(!contains(&value, secret), "{case}: {what} in header {name}");
            }
        }
        let sent_headers: Vec<_> = header_bytes(&properties)
            .into_iter()
            .filter(|(name, _)| !headers::is_broker_bookkeeping(name))
            .collect();
        assert!(
            sent_headers.is_empty(),
            "{case}: transit version 2 sends no headers: {sent_headers:?}"
        );
        assert_eq!(
            properties.content_type().as_ref().map(|c| c.as_str()),
            Some(TRANSIT_V2_CONTENT_TYPE),
            "{case}: content type"
        );
        let framed = headers::decode_message(&properties, &body);
        assert_eq!(framed.api_key, None, "{case}: no API key");
        assert_eq!(
            framed.transit_key_id,
            Some(TEST_TRANSIT_KEY_ID),
            "{case}: the transit key id travels with the message"
        );
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_err(),
            "{case}: the body is sealed, not JSON"
        );
        let id = match reply.body["data"].as_str() {
            // An encrypted request gets an encrypted answer.
            Some(data) => {
                let plain = EnvelopeKey::from_api_key(&key)
                    .decrypt_base64(data)
                    .unwrap();
                let answer: serde_json::Value = serde_json::from_slice(&plain).unwrap();
                answer["submissionId"].as_str().unwrap().parse().unwrap()
            }
            None => reply.submission_id(),
        };
        assert_eq!(
            framed.submission_id,
            Some(id),
            "{case}: the id in the prefix"
        );
        requeue.push((id, properties, body));
    }

    // The sealed messages, put back unchanged, are stored by a worker.
    for (_, properties, body) in &requeue {
        publish_submission(&channel, &env.topology, body, properties.clone()).await;
    }
    let _worker = env.start_worker().await;
    for (id, _, _) in requeue {
        assert_eq!(env.await_row(id, WAIT).await, "accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_and_replayed_seals_are_not_trusted() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let (other_project, _) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let (_connection, channel) = amqp::channel(&env.topology).await;

    // A genuine sealed message, taken off the queue before any worker sees it.
    let reply = api
        .submit_raw(
            Some(&key),
            serde_json::to_vec(&record("genuine")).unwrap(),
            &[("idempotency-key", "genuine-1")],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let genuine_id = reply.submission_id();
    let (genuine, body) = take_queued(&channel, &env.topology).await;

    let mut replies = Tap::queue(&env.topology).await;
    let to_tap = |properties: BasicProperties, correlation: &str| {
        properties
            .with_reply_to(replies.queue.as_str().into())
            .with_correlation_id(correlation.into())
    };
    let forged: Vec<u8> = (0..body.len()).map(|i| (i * 37 % 251) as u8).collect();
    let mut altered = body.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x01;
    // The genuine message claimed for another project: its project id rewritten
    // in the prefix, or the body passed off as version 1 with header claims.
    let at = body
        .windows(16)
        .position(|w| w == project_id.as_bytes())
        .expect("the project id in the prefix");
    let mut replayed = body.clone();
    replayed[at..at + 16].copy_from_slice(other_project.as_bytes());
    let as_v1 = [
        (HEADER_SUBMISSION_ID, genuine_id.to_string()),
        (HEADER_PROJECT_ID, project_id.to_string()),
        (HEADER_TRANSIT_KEY_ID, TEST_TRANSIT_KEY_ID.to_owned()),
        (HEADER_RECEIVED_AT, "2026-01-01T00:00:00Z".to_owned()),
    ]
    .iter()
    .fold(
        genuine
            .clone()
            .with_content_type(TRANSIT_CONTENT_TYPE.into()),
        |properties, (name, value)| with_header(&properties, name, value),
    );
    let cases = [
        ("forged", forged, genuine.clone()),
        ("altered", altered, genuine.clone()),
        ("replayed", replayed, genuine.clone()),
        ("as-v1", body.clone(), as_v1),
    ];
    for (case, bytes, properties) in &cases {
        publish_submission(
            &channel,
            &env.topology,
            bytes,
            to_tap(properties.clone(), case),
        )
        .await;
    }
    let marker = serde_json::to_vec(&record("marker")).unwrap();
    publish_submission(
        &channel,
        &env.topology,
        &marker,
        to_tap(
            with_api_key(&key).with_message_id("marker".into()),
            "marker",
        ),
    )
    .await;
    let worker = env.start_worker().await;

    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < cases.len() + 1 {
        let (correlation, event) = replies.next(WAIT).await.expect("a reply");
        seen.insert(correlation.unwrap_or_default(), event);
    }
    for (case, _, _) in &cases {
        let event = &seen[*case];
        assert_eq!(event.event, EventKind::Rejected, "{case}: {event:?}");
        assert_eq!(
            event.error_code.map(|c| c.as_str()),
            Some("forbidden"),
            "{case}"
        );
        assert_eq!(event.project_id, Uuid::nil(), "{case}: no project");
        assert_ne!(
            event.submission_id, genuine_id,
            "{case}: not the claimed id"
        );
    }
    assert_eq!(seen["marker"].event, EventKind::Accepted);
    assert_eq!(env.count_rows().await, 1, "only the marker is stored");
    assert_eq!(env.status_of(genuine_id).await, None);

    // The genuine message itself, unchanged, is trusted and stored as promised.
    publish_submission(&channel, &env.topology, &body, genuine).await;
    assert_eq!(env.await_row(genuine_id, WAIT).await, "accepted");
    let (stored_project,): (Uuid,) =
        sqlx::query_as("SELECT project_id FROM submissions WHERE id = $1")
            .bind(genuine_id)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(stored_project, project_id);
    drop(worker);
}
