//! The documented example request, from HTTP to row to event to `GET`.

use kyc_core::wire::EventKind;
use kyc_testkit::amqp::Tap;
use kyc_testkit::{Api, TestEnv, eventually, full_record};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_request_is_queued_persisted_announced_and_readable() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let mut events = Tap::events(&env.topology).await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let reply = api.submit(&key, &full_record()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["message"], "success");
    let id = reply.submission_id();
    assert_eq!(id.get_version_num(), 7, "no idempotency key: a UUIDv7");

    let result = eventually(Duration::from_secs(10), "GET says processed", || async {
        let r = api.result(&key, id).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(result.body["status"], "accepted");
    assert_eq!(result.body["submissionId"], id.to_string());
    assert!(result.body["receivedAt"].is_string() && result.body["processedAt"].is_string());

    let (_, event) = events
        .next(Duration::from_secs(10))
        .await
        .expect("an accepted event");
    assert_eq!(event.event, EventKind::Accepted);
    assert_eq!(event.submission_id, id);
    assert_eq!(event.project_id, project_id);
    assert_eq!(event.userid.as_deref(), Some("user-42"));

    let (country, id_type, nationality): (String, String, String) = sqlx::query_as(
        "SELECT issuing_country, id_type, nationality FROM submissions WHERE id = $1",
    )
    .bind(id)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        (country.as_str(), id_type.as_str(), nationality.as_str()),
        ("USA", "drivers_license", "DEU")
    );
    assert_eq!(env.count_rows().await, 1);
}
