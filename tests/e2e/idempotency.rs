//! `Idempotency-Key` over HTTP (`docs/api.md` §5): the same key in the same project names
//! the same submission, stored once; another project gets another id.

use kyc_core::id::submission_id;
use kyc_testkit::{Api, TestEnv, record};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn body(userid: &str) -> Vec<u8> {
    serde_json::to_vec(&record(userid)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_twice_is_one_submission_and_one_row() {
    let env = TestEnv::new().await;
    let (project_a, key_a) = env.project(false).await;
    let (project_b, key_b) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let header = [("Idempotency-Key", "abc")];

    let expected = submission_id(project_a, Some("abc"));
    assert_eq!(expected.get_version_num(), 5, "a UUIDv5");
    for attempt in ["first", "second"] {
        let reply = api.submit_raw(Some(&key_a), body("i-1"), &header).await;
        assert_eq!(reply.status, 200, "{attempt}: {:?}", reply.body);
        assert_eq!(reply.body["message"], "success", "{attempt}");
        assert_eq!(reply.submission_id(), expected, "{attempt}: the derived id");
        if attempt == "first" {
            env.await_row(expected, WAIT).await;
        }
    }

    // The same key in another project is another submission.
    let other = api.submit_raw(Some(&key_b), body("i-1"), &header).await;
    assert_eq!(other.status, 200, "project B: {:?}", other.body);
    let other_id = other.submission_id();
    assert_ne!(other_id, expected, "project B: a different id");
    assert_eq!(
        other_id,
        submission_id(project_b, Some("abc")),
        "project B: derived from its own project id"
    );
    env.await_row(other_id, WAIT).await;

    // A marker sent after the second copy: once it is stored, that copy was
    // handled too, and did not add a row.
    let marker = api.submit(&key_a, &record("marker")).await;
    assert_eq!(marker.status, 200, "marker: {:?}", marker.body);
    env.await_row(marker.submission_id(), WAIT).await;
    assert_eq!(
        env.rows_with_idempotency_key(project_a, "abc").await,
        1,
        "one row for key abc in A"
    );
    assert_eq!(env.count_rows().await, 3, "A's abc, B's abc and the marker");

    let (stored_key, project): (Option<String>, uuid::Uuid) =
        sqlx::query_as("SELECT idempotency_key, project_id FROM submissions WHERE id = $1")
            .bind(expected)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(stored_key.as_deref(), Some("abc"), "the key is stored");
    assert_eq!(project, project_a, "in project A");
    let result = api.result(&key_a, expected).await;
    assert_eq!(
        result.status, 200,
        "GET by the derived id: {:?}",
        result.body
    );
    assert_eq!(result.body["status"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_over_200_characters_are_refused() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());

    let longest = "k".repeat(200);
    let too_long = "k".repeat(201);
    let cases = [
        ("200 characters", longest.as_str(), true),
        ("201 characters", too_long.as_str(), false),
        ("empty", "", false),
    ];
    for (case, idempotency_key, ok) in cases {
        let reply = api
            .submit_raw(
                Some(&key),
                body("long"),
                &[("Idempotency-Key", idempotency_key)],
            )
            .await;
        if ok {
            assert_eq!(reply.status, 200, "{case}: {:?}", reply.body);
            assert_eq!(
                reply.submission_id(),
                submission_id(project_id, Some(idempotency_key)),
                "{case}: derived id"
            );
        } else {
            assert_eq!(reply.status, 400, "{case}: {:?}", reply.body);
            assert_eq!(
                reply.body,
                json!({"errorCode": "invalid_format", "message": "invalid format: Idempotency-Key",
                       "parameters": ["Idempotency-Key"]}),
                "{case}"
            );
        }
    }
}
