//! Direct publishing (`docs/api.md` §8): messages that never passed the intake get the
//! same validation, the same rows and the same result events.

use kyc_bus::lapin::BasicProperties;
use kyc_core::ErrorCode;
use kyc_core::envelope::encrypt_request;
use kyc_core::id::{content_key, submission_id};
use kyc_core::wire::{
    EventKind, HEADER_API_KEY, HEADER_REPLY_MODE, REPLY_BATCH_TYPE, REPLY_MODE_BATCH,
};
use kyc_testkit::amqp::{self, Tap, publish_submission, with_api_key};
use kyc_testkit::{Api, TestEnv, record};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// The expected rejection (code and message), or `None` for accepted.
type Expected = Option<(ErrorCode, &'static str)>;

fn bytes(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_are_validated_stored_and_announced() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut events = Tap::events(&env.topology).await;
    let _worker = env.start_worker().await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let (_connection, channel) = amqp::channel(&env.topology).await;

    let mut bad_date = record("d-bad-date");
    bad_date["birthDate"] = json!("1990-02-30");
    let mut bad_admin = record("d-bad-admin");
    bad_admin["admin"] = json!("nobody@example.com");
    let mut unknown = record("d-unknown");
    unknown["shoeSize"] = json!("44");
    // (name, body, expected code and message; None = accepted)
    let cases: [(&str, Vec<u8>, Expected); 5] = [
        ("valid plain", bytes(&record("d-valid")), None),
        (
            "valid encrypted",
            encrypt_request(&key, &bytes(&record("d-encrypted"))),
            None,
        ),
        (
            "bad birthDate",
            bytes(&bad_date),
            Some((ErrorCode::InvalidFormat, "invalid format: birthDate")),
        ),
        (
            "unregistered admin",
            bytes(&bad_admin),
            Some((ErrorCode::InvalidAdmin, "Invalid admin")),
        ),
        (
            "unknown field",
            bytes(&unknown),
            Some((ErrorCode::InvalidParameter, "invalid parameter: shoeSize")),
        ),
    ];
    for (case, body, expected) in cases {
        publish_submission(&channel, &env.topology, &body, with_api_key(&key)).await;
        // No message_id: the id is derived from the bytes, so a redelivery finds its row.
        let id = submission_id(project_id, Some(&content_key(&body)));
        let (_, event) = events.until(id, WAIT).await;
        assert_eq!(event.project_id, project_id, "{case}: event project");

        let (status, code, message): (String, Option<String>, Option<String>) =
            sqlx::query_as("SELECT status, error_code, message FROM submissions WHERE id = $1")
                .bind(id)
                .fetch_one(env.store.pool())
                .await
                .unwrap_or_else(|e| panic!("{case}: a row under the derived id: {e}"));
        // The result is readable over HTTP like any other (`docs/api.md` §6).
        let result = api.result(&key, id).await;
        assert_eq!(result.status, 200, "{case}: GET {:?}", result.body);
        assert_eq!(result.body["status"], status.as_str(), "{case}: GET status");
        assert_eq!(
            result.body["errorCode"].as_str(),
            code.as_deref(),
            "{case}: GET code"
        );
        assert_eq!(
            result.body["message"].as_str(),
            message.as_deref(),
            "{case}: GET message"
        );
        match expected {
            None => {
                assert_eq!(event.event, EventKind::Accepted, "{case}: event {event:?}");
                assert_eq!(event.error_code, None, "{case}: no error code");
                assert_eq!(status, "accepted", "{case}: row status");
                assert_eq!((code, message), (None, None), "{case}: row has no error");
            }
            Some((expected_code, expected_message)) => {
                assert_eq!(event.event, EventKind::Rejected, "{case}: event {event:?}");
                assert_eq!(event.error_code, Some(expected_code), "{case}: event code");
                assert_eq!(
                    event.message.as_deref(),
                    Some(expected_message),
                    "{case}: event message"
                );
                assert_eq!(status, "rejected", "{case}: row status");
                assert_eq!(
                    code.as_deref(),
                    Some(expected_code.as_str()),
                    "{case}: row code"
                );
                assert_eq!(
                    message.as_deref(),
                    Some(expected_message),
                    "{case}: row message"
                );
            }
        }
    }
    assert_eq!(env.count_rows().await, 5, "one row per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_without_a_valid_key_store_nothing_but_reply_forbidden() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut replies = Tap::queue(&env.topology).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = amqp::channel(&env.topology).await;
    let body = bytes(&record("f-1"));

    let unknown = "kyc_not_a_key_0123456789abcdef0123456789abcdef";
    let cases = [
        ("no x-api-key", BasicProperties::default()),
        ("unknown x-api-key", with_api_key(unknown)),
    ];
    for (case, properties) in &cases {
        publish_submission(&channel, &env.topology, &body, properties.clone()).await;
        // The same, asking for a reply.
        let correlation = format!("corr {case}");
        let properties = properties
            .clone()
            .with_reply_to(replies.queue.as_str().into())
            .with_correlation_id(correlation.as_str().into());
        publish_submission(&channel, &env.topology, &body, properties).await;
        let (got, event) = replies
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("{case}: a reply"));
        assert_eq!(
            got.as_deref(),
            Some(correlation.as_str()),
            "{case}: correlation id"
        );
        assert_eq!(event.event, EventKind::Rejected, "{case}: {event:?}");
        assert_eq!(event.error_code, Some(ErrorCode::Forbidden), "{case}: code");
        assert_eq!(
            event.message.as_deref(),
            Some("Forbidden"),
            "{case}: message"
        );
        assert_ne!(event.project_id, project_id, "{case}: names no project");
    }

    // A valid marker published after them: once it is stored, they were handled.
    let marker = bytes(&record("marker"));
    publish_submission(&channel, &env.topology, &marker, with_api_key(&key)).await;
    let marker_id = submission_id(project_id, Some(&content_key(&marker)));
    env.await_row(marker_id, WAIT).await;
    assert_eq!(env.count_rows().await, 1, "only the marker is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_to_gets_the_result_with_the_correlation_id() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut replies = Tap::queue(&env.topology).await;
    let mut events = Tap::events(&env.topology).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = amqp::channel(&env.topology).await;

    let properties = with_api_key(&key)
        .with_message_id("k-1".into())
        .with_reply_to(replies.queue.as_str().into())
        .with_correlation_id("c-1".into());
    publish_submission(
        &channel,
        &env.topology,
        &bytes(&record("k-user")),
        properties,
    )
    .await;

    let expected = submission_id(project_id, Some("k-1"));
    assert_eq!(expected.get_version_num(), 5, "message_id names a UUIDv5");
    let (correlation, reply) = replies.next(WAIT).await.expect("a reply");
    assert_eq!(correlation.as_deref(), Some("c-1"), "reply: correlation id");
    assert_eq!(reply.submission_id, expected, "reply: submission id");
    assert_eq!(reply.event, EventKind::Accepted, "reply: {reply:?}");
    assert_eq!(reply.project_id, project_id, "reply: project");
    assert_eq!(
        reply.idempotency_key.as_deref(),
        Some("k-1"),
        "reply: idempotency key"
    );
    assert_eq!(reply.userid.as_deref(), Some("k-user"), "reply: userid");

    // The event exchange carries the same event.
    let (_, event) = events.until(expected, WAIT).await;
    assert_eq!(event.event, EventKind::Accepted, "event: {event:?}");
    assert_eq!(
        event.idempotency_key.as_deref(),
        Some("k-1"),
        "event: idempotency key"
    );

    let (key_stored,): (Option<String>,) =
        sqlx::query_as("SELECT idempotency_key FROM submissions WHERE id = $1")
            .bind(expected)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(key_stored.as_deref(), Some("k-1"), "row: idempotency key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_id_twice_is_stored_once() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let (_connection, channel) = amqp::channel(&env.topology).await;
    let publish = |message_id: &'static str, userid: &'static str| {
        let properties = with_api_key(&key).with_message_id(message_id.into());
        let body = bytes(&record(userid));
        let channel = channel.clone();
        let topology = env.topology.clone();
        async move { publish_submission(&channel, &topology, &body, properties).await }
    };

    // Both copies queued before any worker runs: they can land in one batch.
    publish("dup-same-batch", "first").await;
    publish("dup-same-batch", "second").await;
    let _worker = env.start_worker().await;
    let same_batch = submission_id(project_id, Some("dup-same-batch"));
    env.await_row(same_batch, WAIT).await;

    // The second copy arrives after the first was stored.
    publish("dup-later", "first").await;
    let later = submission_id(project_id, Some("dup-later"));
    env.await_row(later, WAIT).await;
    publish("dup-later", "second").await;

    // A marker after everything: once it is stored, every copy was handled.
    publish("marker", "marker").await;
    env.await_row(submission_id(project_id, Some("marker")), WAIT)
        .await;

    for (case, message_id, id) in [
        ("same batch", "dup-same-batch", same_batch),
        ("later", "dup-later", later),
    ] {
        assert_eq!(
            env.rows_with_idempotency_key(project_id, message_id).await,
            1,
            "{case}: one row"
        );
        assert_eq!(
            env.status_of(id).await.as_deref(),
            Some("accepted"),
            "{case}: accepted"
        );
    }
    assert_eq!(env.count_rows().await, 3, "two submissions and the marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_reply_mode_answers_a_worker_batch_with_one_message() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut replies = Tap::queue(&env.topology).await;
    let (_connection, channel) = amqp::channel(&env.topology).await;

    // Four messages asking for batched replies (one of them invalid) and one
    // asking for a plain reply, all queued before a worker starts, so that one
    // batch takes them all.
    let batched = |n: u32| {
        with_api_key(&key)
            .with_headers(kyc_bus::headers::table([
                (HEADER_API_KEY, key.as_str()),
                (HEADER_REPLY_MODE, REPLY_MODE_BATCH),
            ]))
            .with_message_id(format!("b-{n}").into())
            .with_reply_to(replies.queue.as_str().into())
            .with_correlation_id(format!("c-{n}").into())
    };
    for n in 1..=3 {
        let body = bytes(&record(&format!("b-user-{n}")));
        publish_submission(&channel, &env.topology, &body, batched(n)).await;
    }
    publish_submission(&channel, &env.topology, b"not json", batched(4)).await;
    let plain = with_api_key(&key)
        .with_message_id("p-1".into())
        .with_reply_to(replies.queue.as_str().into())
        .with_correlation_id("c-plain".into());
    publish_submission(&channel, &env.topology, &bytes(&record("p-user")), plain).await;
    let _worker = env.start_worker().await;

    let mut batches = Vec::new();
    let mut plain_replies = Vec::new();
    while batches.len() + plain_replies.len() < 2 {
        let (kind, results) = replies.next_reply(WAIT).await.expect("a reply");
        match kind.as_deref() {
            Some(REPLY_BATCH_TYPE) => batches.push(results),
            _ => plain_replies.push(results),
        }
    }
    assert_eq!(batches.len(), 1, "one batch reply: {batches:?}");
    let mut results = batches.pop().unwrap();
    results.sort_by(|a, b| a.correlation_id.cmp(&b.correlation_id));
    let correlations: Vec<_> = results
        .iter()
        .map(|r| r.correlation_id.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(correlations, ["c-1", "c-2", "c-3", "c-4"]);
    for (n, reply) in (1..=4).zip(&results) {
        let key = format!("b-{n}");
        assert_eq!(
            reply.event.submission_id,
            submission_id(project_id, Some(&key)),
            "{key}: submission id"
        );
        assert_eq!(reply.event.idempotency_key.as_deref(), Some(key.as_str()));
    }
    assert!(
        results[..3]
            .iter()
            .all(|r| r.event.event == EventKind::Accepted),
        "{results:?}"
    );
    assert_eq!(results[3].event.event, EventKind::Rejected);
    assert_eq!(results[3].event.error_code, Some(ErrorCode::InvalidPayload));

    // The message that did not ask for batching got its own plain reply.
    assert_eq!(plain_replies.len(), 1);
    assert_eq!(plain_replies[0].len(), 1);
    assert_eq!(
        plain_replies[0][0].correlation_id.as_deref(),
        Some("c-plain")
    );
    assert_eq!(
        plain_replies[0][0].event.submission_id,
        submission_id(project_id, Some("p-1"))
    );
    assert_eq!(env.count_rows().await, 5, "every message stored once");
}
