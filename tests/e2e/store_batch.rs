//! `Store::store_batch` with new, already stored and erased ids in one batch:
//! every outcome gets the verdict it would have had on its own, and each new
//! id is stored once.

use kyc_core::{ErrorCode, Rejection};
use kyc_store::DataKey;
use kyc_store::submissions::Outcome;
use kyc_testkit::TestEnv;
use uuid::Uuid;

fn rejected(id: Uuid, project_id: Uuid, code: ErrorCode) -> Outcome {
    Outcome {
        id,
        project_id,
        received_at: time::OffsetDateTime::now_utc(),
        idempotency_key: None,
        result: Err(Rejection::new(code)),
    }
}

fn codes(verdicts: &[kyc_store::submissions::Verdict]) -> Vec<Option<ErrorCode>> {
    verdicts.iter().map(|v| v.error_code).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_stored_and_erased_ids_in_one_batch_each_get_their_own_verdict() {
    let env = TestEnv::new().await;
    let (project, _) = env.project(false).await;
    let key = DataKey::from_base64(
        "test",
        &secrecy::SecretString::from(kyc_testkit::TEST_DATA_KEY),
    )
    .unwrap();
    let [a, b, c, d, e] = std::array::from_fn(|_| Uuid::now_v7());

    // New ids only, one of them twice: the first outcome of an id wins.
    let fresh = [
        rejected(a, project, ErrorCode::InvalidAdmin),
        rejected(b, project, ErrorCode::InvalidProject),
        rejected(a, project, ErrorCode::InvalidData),
    ];
    let verdicts = env.store.store_batch(&fresh, &key).await.unwrap();
    assert_eq!(
        codes(&verdicts),
        [
            Some(ErrorCode::InvalidAdmin),
            Some(ErrorCode::InvalidProject),
            Some(ErrorCode::InvalidAdmin)
        ]
    );
    assert_eq!(env.count_rows().await, 2);

    // A stored id beside a new one: the stored verdict for it, the new one stored.
    let mixed = [
        rejected(c, project, ErrorCode::InvalidIdType),
        rejected(a, project, ErrorCode::InvalidData),
    ];
    let verdicts = env.store.store_batch(&mixed, &key).await.unwrap();
    assert_eq!(
        codes(&verdicts),
        [
            Some(ErrorCode::InvalidIdType),
            Some(ErrorCode::InvalidAdmin)
        ]
    );
    assert_eq!(env.count_rows().await, 3);
    assert_eq!(env.status_of(c).await.as_deref(), Some("rejected"));

    // An erased id beside a new one: never stored, announced as
    // invalid_submission; the new one stored.
    sqlx::query("INSERT INTO submission_tombstones (id, project_id) VALUES ($1, $2)")
        .bind(d)
        .bind(project)
        .execute(env.store.pool())
        .await
        .unwrap();
    let erased = [
        rejected(d, project, ErrorCode::InvalidAdmin),
        rejected(e, project, ErrorCode::InvalidAdmin),
    ];
    let verdicts = env.store.store_batch(&erased, &key).await.unwrap();
    assert_eq!(
        codes(&verdicts),
        [
            Some(ErrorCode::InvalidSubmission),
            Some(ErrorCode::InvalidAdmin)
        ]
    );
    assert_eq!(env.status_of(d).await, None, "an erased id is never stored");
    assert_eq!(env.status_of(e).await.as_deref(), Some("rejected"));
    assert_eq!(env.count_rows().await, 4);
}
