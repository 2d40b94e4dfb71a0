//! Per-project rate limits (`docs/api.md` §3 `rate_limited`).

use futures_util::future::join_all;
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_limit_gets_429_with_retry_after_and_the_accepted_are_stored() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let (_, other_key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.http.rate_limit_per_second = 50;
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let burst = (0..300).map(|i| {
        let api = api.clone();
        let key = key.clone();
        async move { api.submit(&key, &record(&format!("burst-{i}"))).await }
    });
    let replies = join_all(burst).await;

    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    let accepted: HashSet<uuid::Uuid> = replies
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.submission_id())
        .collect();
    assert_eq!(
        limited.len() + accepted.len(),
        300,
        "every answer is 200 or 429"
    );
    assert!(!limited.is_empty(), "300 at once exceed 50/s");
    assert!(
        accepted.len() >= 50,
        "a full bucket lets a second's worth through, got {}",
        accepted.len()
    );
    for reply in &limited {
        assert_eq!(reply.error_code(), Some("rate_limited"));
        assert_eq!(reply.body["message"], "Too many requests");
        assert_eq!(
            reply.retry_after.as_deref(),
            Some("1"),
            "429 carries Retry-After"
        );
    }

    // The limit is per project: another project is not affected.
    assert_eq!(api.submit(&other_key, &record("other")).await.status, 200);

    let expected = accepted.len() as i64 + 1;
    eventually(
        Duration::from_secs(20),
        "every accepted submission stored",
        || async { (env.count_rows().await == expected).then_some(()) },
    )
    .await;
    // Every record answered 200 is stored once, by what was sent (its userid).
    let mut sent: BTreeSet<String> = replies
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == 200)
        .map(|(i, _)| format!("burst-{i}"))
        .collect();
    sent.insert("other".to_owned());
    env.assert_userids_stored_once(&sent).await;
}
