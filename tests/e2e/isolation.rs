//! Tenants never see each other's submissions (`docs/api.md` §6).

use kyc_testkit::{Api, TestEnv, record};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_cannot_read_another_projects_submission() {
    let env = TestEnv::new().await;
    let (_, key_a) = env.project(false).await;
    let (_, key_b) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let reply = api.submit(&key_a, &record("a-1")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    env.await_row(id, Duration::from_secs(10)).await;

    let cases = [
        ("owner's key", key_a.as_str(), 200),
        ("other project's key", key_b.as_str(), 404),
    ];
    for (case, key, status) in cases {
        let result = api.result(key, id).await;
        assert_eq!(result.status, status, "{case}: {:?}", result.body);
        if status == 200 {
            assert_eq!(result.body["submissionId"], id.to_string(), "{case}");
            assert_eq!(result.body["status"], "accepted", "{case}");
        } else {
            assert_eq!(
                result.body,
                json!({"errorCode": "not_found", "message": "Submission not found"}),
                "{case}: indistinguishable from an unknown id"
            );
        }
    }
}
