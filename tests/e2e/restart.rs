//! A worker stopped and replaced in the middle of a stream loses nothing and
//! stores nothing twice.

use futures_util::StreamExt;
use kyc_testkit::amqp::Tap;
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

const RECORDS: usize = 2_000;
const CONCURRENCY: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_mid_stream_loses_and_duplicates_nothing() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let mut events = Tap::events(&env.topology).await;
    let first = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let answered = Arc::new(AtomicUsize::new(0));
    let producer = tokio::spawn({
        let answered = answered.clone();
        async move {
            futures_util::stream::iter(0..RECORDS)
                .map(|i| {
                    let (api, key, answered) = (api.clone(), key.clone(), answered.clone());
                    async move {
                        let reply = api.submit(&key, &record(&format!("r-{i}"))).await;
                        answered.fetch_add(1, Ordering::Relaxed);
                        (i, reply)
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<_>>()
                .await
        }
    });

    eventually(Duration::from_secs(60), "more than 200 rows", || async {
        (env.count_rows().await > 200).then_some(())
    })
    .await;
    assert!(
        !producer.is_finished(),
        "the worker must be stopped while submissions are still coming in"
    );
    first
        .shutdown()
        .await
        .expect("a stopped worker drains its batch and returns Ok");
    let rows_at_stop = env.count_rows().await;
    // While no worker runs, submissions pile up in the queue for the next one.
    eventually(
        Duration::from_secs(60),
        "a backlog without a worker",
        || async {
            let n = i64::try_from(answered.load(Ordering::Relaxed)).unwrap();
            (n > rows_at_stop + 100).then_some(())
        },
    )
    .await;
    assert_eq!(
        env.count_rows().await,
        rows_at_stop,
        "nothing is stored while no worker runs"
    );
    let _second = env.start_worker().await;

    let replies = producer.await.expect("producer task");
    assert_eq!(replies.len(), RECORDS, "every request answered");
    let mut ids = HashSet::new();
    for (i, reply) in &replies {
        assert_eq!(reply.status, 200, "record {i}: {:?}", reply.body);
        assert!(ids.insert(reply.submission_id()), "record {i}: distinct id");
    }

    let expected = i64::try_from(ids.len()).unwrap();
    eventually(Duration::from_secs(120), "a row per 200 answer", || async {
        (env.count_rows().await >= expected).then_some(())
    })
    .await;
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM submissions")
        .fetch_all(env.store.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), ids.len(), "one row per 200 answer, no more");
    let stored: HashSet<Uuid> = stored.into_iter().collect();
    assert_eq!(stored, ids, "exactly the answered ids are stored");
    let accepted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM submissions WHERE status = 'accepted'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(accepted, expected, "every row accepted");

    // Every submission has its result event (repeats after redelivery allowed).
    let announced = events.distinct(ids.len(), Duration::from_secs(60)).await;
    let announced: HashSet<Uuid> = announced.into_keys().collect();
    assert_eq!(
        announced, ids,
        "an event for every stored submission, none other"
    );
}
