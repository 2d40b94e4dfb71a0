//! Batch messages from a direct publisher (`docs/api.md` §8, "Batch messages"),
//! and the bulk lane: a backlog of batch messages never stands in front of a
//! single-record submission.

use kyc_bus::lapin::options::BasicPublishOptions;
use kyc_bus::lapin::{BasicProperties, Channel};
use kyc_core::id::submission_id;
use kyc_core::wire::{
    REPLY_BATCH_TYPE, SUBMISSION_BATCH_ROUTING_KEY, SUBMISSION_BATCH_TYPE, encode_batch,
};
use kyc_testkit::amqp::{Tap, channel, with_api_key};
use kyc_testkit::{Api, TestEnv, record};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Publishes a batch message to the bulk lane and waits for the broker's ack.
pub(crate) async fn publish_batch(
    channel: &Channel,
    env: &TestEnv,
    body: &[u8],
    properties: BasicProperties,
) {
    let confirm = channel
        .basic_publish(
            env.topology.submissions_exchange().into(),
            SUBMISSION_BATCH_ROUTING_KEY.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties
                .with_delivery_mode(2)
                .with_type(SUBMISSION_BATCH_TYPE.into()),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack() && confirm.take_message().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_batch_message_is_answered_per_record_under_per_record_ids() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = channel(&env.topology).await;
    let mut replies = Tap::queue(&env.topology).await;

    let valid = serde_json::to_vec(&record("b-1")).unwrap();
    let mut missing = record("b-2");
    missing.as_object_mut().unwrap().remove("email");
    let missing = serde_json::to_vec(&missing).unwrap();
    let keyless = serde_json::to_vec(&record("b-4")).unwrap();
    let body = encode_batch([
        (Some("k-1"), Some("c1"), &valid[..]),
        (Some("k-2"), Some("c2"), &missing[..]),
        (Some("tab\tkey"), Some("c3"), &valid[..]),
        (None, Some("c4"), &keyless[..]),
        (Some("k-5"), Some("c5"), &b"[1, 2]"[..]),
    ]);
    publish_batch(
        &channel,
        &env,
        &body,
        with_api_key(&key).with_reply_to(replies.queue.as_str().into()),
    )
    .await;

    let (kind, results) = replies
        .next_reply(Duration::from_secs(20))
        .await
        .expect("a batch reply");
    assert_eq!(kind.as_deref(), Some(REPLY_BATCH_TYPE));
    let by_correlation: BTreeMap<String, _> = results
        .into_iter()
        .map(|r| (r.correlation_id.clone().unwrap(), r.event))
        .collect();
    assert_eq!(by_correlation.len(), 5, "{by_correlation:?}");
    let code = |c: &str| by_correlation[c].error_code.map(|e| e.as_str());
    assert_eq!(code("c1"), None);
    assert_eq!(code("c2"), Some("missing_data"));
    assert_eq!(code("c3"), Some("invalid_format"), "a key out of bounds");
    assert_eq!(code("c4"), None);
    assert_eq!(code("c5"), Some("invalid_payload"));
    // The id a single message with the same message_id would get.
    assert_eq!(
        by_correlation["c1"].submission_id,
        submission_id(project_id, Some("k-1"))
    );
    assert_eq!(
        by_correlation["c4"].submission_id,
        submission_id(project_id, Some(&kyc_core::id::content_key(&keyless)))
    );
    // Stored: all but the record out of bounds.
    assert_eq!(env.count_rows().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_backlog_does_not_delay_single_submissions() {
    const MESSAGES: usize = 60;
    const RECORDS: usize = 500;
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let (_connection, channel) = channel(&env.topology).await;

    // A migration's backlog waits on the bulk lane before any worker runs.
    let record_bodies: Vec<Vec<u8>> = (0..MESSAGES * RECORDS)
        .map(|i| serde_json::to_vec(&record(&format!("bulk-{i}"))).unwrap())
        .collect();
    let keys: Vec<String> = (0..MESSAGES * RECORDS)
        .map(|i| format!("bulk-{i}"))
        .collect();
    for m in 0..MESSAGES {
        let range = m * RECORDS..(m + 1) * RECORDS;
        let body = encode_batch(
            range
                .clone()
                .map(|i| (Some(keys[i].as_str()), None, record_bodies[i].as_slice())),
        );
        publish_batch(&channel, &env, &body, with_api_key(&key)).await;
    }

    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let started = Instant::now();
    let reply = api
        .post(
            "/v3/submission/migration?wait=30",
            Some(&key),
            serde_json::to_vec(&record("single")).unwrap(),
            &[],
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let stored = env.count_rows().await;
    eprintln!(
        "single submission persisted after {waited:?}, {stored} rows (its own included) stored by then"
    );
    // Stored while part of the migration still waited: it did not queue
    // behind it (on one queue it would be stored after all of it). How much of
    // the backlog is stored by then depends on which consumer the worker starts
    // first and on the machine's load, so that is reported, not bounded.
    assert!(
        stored <= (MESSAGES * RECORDS) as i64,
        "the single submission took {waited:?}, by when all {stored} rows were stored"
    );
}

/// A worker with two bulk-lane consumers (`worker.bulk_consumers`): while one
/// transaction waits on the database, the other consumer of the same worker
/// stores the next batch messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_bulk_transaction_does_not_hold_up_the_workers_other_bulk_consumer() {
    let env = TestEnv::new().await;
    let (blocked_project, blocked_key) = env.project(false).await;
    let (free_project, free_key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.worker.bulk_consumers = 2;
    let _worker = env.start_worker_with(&settings).await;
    let (_connection, channel) = channel(&env.topology).await;
    let pool = env.store.pool();

    // A stored row, then held by an open transaction of ours: a batch message
    // carrying the same record again makes its transaction wait for the row.
    let body = serde_json::to_vec(&record("held")).unwrap();
    let batch = encode_batch([(Some("held"), None, &body[..])]);
    publish_batch(&channel, &env, &batch, with_api_key(&blocked_key)).await;
    let held = submission_id(blocked_project, Some("held"));
    env.await_row(held, Duration::from_secs(20)).await;
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM submissions WHERE id = $1 FOR UPDATE")
        .bind(held)
        .execute(&mut *holder)
        .await
        .unwrap();
    publish_batch(&channel, &env, &batch, with_api_key(&blocked_key)).await;
    kyc_testkit::eventually(
        Duration::from_secs(20),
        "a bulk transaction waiting for the held row",
        || async {
            let (waiting,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        },
    )
    .await;

    // Another project's migration goes on meanwhile. The broker hands the
    // lane's messages to both consumers in turn, so some of these may wait
    // behind the held row in the blocked consumer's prefetch; the rest are
    // stored by the other consumer while our transaction still holds the row.
    for i in 0..4 {
        let key = format!("free-{i}");
        let body = serde_json::to_vec(&record(&key)).unwrap();
        let batch = encode_batch([(Some(key.as_str()), None, &body[..])]);
        publish_batch(&channel, &env, &batch, with_api_key(&free_key)).await;
    }
    kyc_testkit::eventually(
        Duration::from_secs(20),
        "a record of the other project stored while the row is held",
        || async {
            let (stored,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM submissions WHERE project_id = $1")
                    .bind(free_project)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            (stored > 0).then_some(())
        },
    )
    .await;
    holder.commit().await.unwrap();
    env.await_userids_stored(
        &(0..4).map(|i| format!("free-{i}")).collect(),
        Duration::from_secs(20),
    )
    .await;
}
