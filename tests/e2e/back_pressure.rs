//! The intake's bound on publishes awaiting a broker confirm
//! (`amqp.max_in_flight`): past it a request is answered 503 `unavailable` at
//! once, never 200, and nothing of it is stored.

use futures_util::future::join_all;
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_bound_requests_get_503_and_only_the_200s_are_stored() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.amqp.max_in_flight = 1;
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let burst = (0..200).map(|i| {
        let api = api.clone();
        let key = key.clone();
        async move { api.submit(&key, &record(&format!("bp-{i}"))).await }
    });
    let replies = join_all(burst).await;

    let busy: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    let accepted: HashSet<uuid::Uuid> = replies
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.submission_id())
        .collect();
    assert_eq!(
        busy.len() + accepted.len(),
        200,
        "every answer is 200 or 503"
    );
    assert!(
        !busy.is_empty(),
        "200 concurrent requests exceed one publish in flight"
    );
    assert!(!accepted.is_empty(), "some requests get through");
    for reply in &busy {
        assert_eq!(reply.error_code(), Some("unavailable"), "{:?}", reply.body);
        assert!(reply.retry_after.is_some(), "503 carries Retry-After");
    }

    // Exactly the 200s are stored: a 503 published nothing.
    let expected = accepted.len() as i64;
    eventually(
        Duration::from_secs(20),
        "every accepted submission stored",
        || async { (env.count_rows().await == expected).then_some(()) },
    )
    .await;
    let stored: Vec<(uuid::Uuid,)> = sqlx::query_as("SELECT id FROM submissions")
        .fetch_all(env.store.pool())
        .await
        .unwrap();
    let stored: HashSet<uuid::Uuid> = stored.into_iter().map(|(id,)| id).collect();
    assert_eq!(stored, accepted, "the stored rows are the 200s");
}
