//! `?wait=<seconds>` (`docs/api.md` §5): 200 once persisted, 400 with the worker's code,
//! 202 when the wait runs out.

use kyc_testkit::{Api, TestEnv, eventually, record};
use std::time::Duration;

fn body(userid: &str) -> Vec<u8> {
    serde_json::to_vec(&record(userid)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_200_only_once_the_row_exists() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let reply = api
        .post(
            "/v3/submission/migration?wait=10",
            Some(&key),
            body("w1"),
            &[],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["message"], "success");
    // No polling: the 200 itself promises the row.
    let stored = env
        .store
        .find_result(env_project(&env, &key).await, reply.submission_id())
        .await
        .unwrap();
    assert!(
        stored.is_some_and(|r| r.verdict.accepted),
        "the row exists when ?wait answers 200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_202_when_no_worker_runs_and_the_submission_is_processed_later() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());

    let reply = api
        .post(
            "/v3/submission/migration?wait=1",
            Some(&key),
            body("w2"),
            &[],
        )
        .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["message"], "accepted");
    let id = reply.submission_id();
    assert_eq!(
        env.count_rows().await,
        0,
        "nothing is stored without a worker"
    );

    let _worker = env.start_worker().await;
    let result = eventually(
        Duration::from_secs(10),
        "the queued submission is processed",
        || async {
            let r = api.result(&key, id).await;
            (r.status == 200).then_some(r)
        },
    )
    .await;
    assert_eq!(result.body["status"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_400_with_the_code_the_worker_stored() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    // The intake caches the project as enabled (a request it rejects itself, so the
    // worker never sees it); then the project is disabled. The intake still
    // accepts within its cache TTL; the worker, looking the project up for the
    // first time, rejects: only ?wait can tell the client now.
    let warm = api
        .post("/v3/submission/migration", Some(&key), b"{}".to_vec(), &[])
        .await;
    assert_eq!(warm.status, 400);
    env.store
        .set_project_disabled(project_id, true)
        .await
        .unwrap();

    let reply = api
        .post(
            "/v3/submission/migration?wait=10",
            Some(&key),
            body("w3"),
            &[],
        )
        .await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.error_code(), Some("invalid_project"));
    assert_eq!(reply.body["message"], "Invalid project");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_outside_one_to_thirty_seconds_is_invalid_format() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    for value in ["0", "31", "abc", "", "-1"] {
        let reply = api
            .post(
                &format!("/v3/submission/migration?wait={value}"),
                Some(&key),
                body("w4"),
                &[],
            )
            .await;
        assert_eq!(reply.status, 400, "wait={value}: {:?}", reply.body);
        assert_eq!(
            reply.body["message"], "invalid format: wait",
            "wait={value}"
        );
    }
}

async fn env_project(env: &TestEnv, key: &str) -> uuid::Uuid {
    env.store
        .project_by_key_digest(&kyc_store::projects::key_digest(key))
        .await
        .unwrap()
        .expect("the key's project")
        .id
}
