//! Many simultaneous requests: every one answered, every one stored exactly once.

use futures_util::future::join_all;
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

const REQUESTS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_are_each_stored_once() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let tasks = (0..REQUESTS).map(|i| {
        let api = api.clone();
        let key = key.clone();
        tokio::spawn(async move { (i, api.submit(&key, &record(&format!("c-{i}"))).await) })
    });
    let mut ids = HashSet::new();
    for joined in join_all(tasks).await {
        let (i, reply) = joined.expect("request task");
        assert_eq!(reply.status, 200, "request {i}: {:?}", reply.body);
        assert_eq!(
            reply.submission_id().get_version_num(),
            7,
            "request {i}: no idempotency key, a UUIDv7"
        );
        assert!(
            ids.insert(reply.submission_id()),
            "request {i}: a fresh submission id"
        );
    }
    assert_eq!(ids.len(), REQUESTS, "distinct ids");

    let expected = i64::try_from(REQUESTS).unwrap();
    eventually(Duration::from_secs(60), "500 rows", || async {
        (env.count_rows().await >= expected).then_some(())
    })
    .await;
    assert_eq!(env.count_rows().await, expected, "rows");
    // Counted by what the clients sent: each userid once, and exactly those sent.
    let sent: BTreeSet<String> = (0..REQUESTS).map(|i| format!("c-{i}")).collect();
    env.assert_userids_stored_once(&sent).await;

    let stored: HashSet<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM submissions")
        .fetch_all(env.store.pool())
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(stored, ids, "the stored ids are exactly the answered ids");
}
