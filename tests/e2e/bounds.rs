//! The worker's bounds on direct messages (`docs/api.md` §8, "Bounds"): the HTTP body
//! limit applies to them too, and a `message_id` must be a valid idempotency key.
//! A message out of bounds is answered, acknowledged and not stored.

use kyc_core::ErrorCode;
use kyc_core::id::{content_key, submission_id};
use kyc_core::wire::EventKind;
use kyc_testkit::amqp::{self, Tap, publish_submission, with_api_key};
use kyc_testkit::{TestEnv, record};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn stored(env: &TestEnv, id: uuid::Uuid) -> bool {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM submissions WHERE id = $1")
        .bind(id)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    n == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_mebibyte_message_is_refused_and_the_next_one_stored() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut replies = Tap::queue(&env.topology).await;
    let mut events = Tap::events(&env.topology).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = amqp::channel(&env.topology).await;

    // A valid record padded with white space to 4 MiB: only its size is wrong.
    let mut big = serde_json::to_vec(&record("big")).unwrap();
    big.resize(4 << 20, b' ');
    let properties = with_api_key(&key)
        .with_reply_to(replies.queue.as_str().into())
        .with_correlation_id("big".into());
    publish_submission(&channel, &env.topology, &big, properties).await;
    let big_id = submission_id(project_id, Some(&content_key(&big)));

    let (_, results) = replies.next_reply(WAIT).await.expect("a reply");
    let event = &results[0].event;
    assert_eq!(results[0].correlation_id.as_deref(), Some("big"));
    assert_eq!(event.event, EventKind::Rejected, "{event:?}");
    assert_eq!(event.error_code, Some(ErrorCode::PayloadTooLarge));
    assert_eq!(event.message.as_deref(), Some("Payload too large"));
    assert_eq!(
        (event.submission_id, event.project_id),
        (big_id, project_id)
    );
    let (_, announced) = events.until(big_id, WAIT).await;
    assert_eq!(announced.error_code, Some(ErrorCode::PayloadTooLarge));

    // The next, normal message is stored; the big one never was (and was acked:
    // it is not redelivered ahead of the next one).
    let body = serde_json::to_vec(&record("after-big")).unwrap();
    publish_submission(&channel, &env.topology, &body, with_api_key(&key)).await;
    let id = submission_id(project_id, Some(&content_key(&body)));
    let (_, event) = events.until(id, WAIT).await;
    assert_eq!(event.event, EventKind::Accepted, "{event:?}");
    assert!(stored(&env, id).await, "the normal message is stored");
    assert!(
        !stored(&env, big_id).await,
        "nothing of the big one is stored"
    );
    assert_eq!(
        amqp::queue_depth(&env.topology).await,
        0,
        "both acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_that_is_no_idempotency_key_is_refused_and_not_echoed() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut replies = Tap::queue(&env.topology).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = amqp::channel(&env.topology).await;

    let body = serde_json::to_vec(&record("long-id")).unwrap();
    let long = "m".repeat(201);
    let properties = with_api_key(&key)
        .with_message_id(long.as_str().into())
        .with_reply_to(replies.queue.as_str().into());
    publish_submission(&channel, &env.topology, &body, properties).await;

    let (_, results) = replies.next_reply(WAIT).await.expect("a reply");
    let event = &results[0].event;
    assert_eq!(
        event.error_code,
        Some(ErrorCode::InvalidFormat),
        "{event:?}"
    );
    assert_eq!(
        event.message.as_deref(),
        Some("invalid format: Idempotency-Key")
    );
    assert_eq!(
        event.idempotency_key, None,
        "an out-of-bounds key is not echoed"
    );
    assert!(!stored(&env, submission_id(project_id, Some(&long))).await);
    assert!(!stored(&env, event.submission_id).await);
}
