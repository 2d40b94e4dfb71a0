//! Key rotation: the old key stops working, but nothing already answered 200 with
//! it is lost (the intake's transit seal lets workers trust what the intake
//! authenticated, without any API key on the message).

use kyc_bus::headers;
use kyc_core::wire::{
    HEADER_API_KEY, HEADER_PROJECT_ID, HEADER_RECEIVED_AT, HEADER_SUBMISSION_ID,
    HEADER_TRANSIT_KEY_ID,
};
use kyc_testkit::amqp::{Tap, channel, publish_submission, with_api_key};
use kyc_testkit::{Api, TEST_TRANSIT_KEY_ID, TestEnv, eventually, record};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_accepted_before_a_rotation_are_stored_and_the_old_key_then_fails() {
    let env = TestEnv::new().await;
    let (project_id, old_key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.directory.ttl_ms = 100;
    let intake = env.start_intake_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());

    // Queued with the old key while no worker runs…
    let reply = api.submit(&old_key, &record("before-rotation")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    let new_key = env.store.rotate_key(project_id).await.unwrap();

    // …and stored by a worker that has never seen the old key.
    let _worker = env.start_worker_with(&settings).await;
    let result = eventually(
        Duration::from_secs(10),
        "the pre-rotation submission stored",
        || async {
            let r = api.result(new_key.expose(), id).await;
            (r.status == 200).then_some(r)
        },
    )
    .await;
    assert_eq!(result.body["status"], "accepted");

    // Once the intake's cache has expired, the old key is refused.
    eventually(
        Duration::from_secs(5),
        "the old key refused over HTTP",
        || async { (api.submit(&old_key, &record("after")).await.status == 403).then_some(()) },
    )
    .await;
    assert_eq!(
        api.submit(new_key.expose(), &record("new")).await.status,
        200
    );

    // A direct message with the old key stores nothing.
    let mut events = Tap::events(&env.topology).await;
    let (_connection, channel) = channel(&env.topology).await;
    let body = serde_json::to_vec(&record("direct-old-key")).unwrap();
    publish_submission(&channel, &env.topology, &body, with_api_key(&old_key)).await;
    let marker = serde_json::to_vec(&record("marker")).unwrap();
    publish_submission(
        &channel,
        &env.topology,
        &marker,
        with_api_key(new_key.expose()),
    )
    .await;
    let (_, event) = events
        .next(Duration::from_secs(10))
        .await
        .expect("the marker's event");
    assert_eq!(
        event.userid.as_deref(),
        Some("marker"),
        "the old-key message produced no event"
    );
    let stored: (i64,) =
        sqlx::query_as("SELECT count(*) FROM submissions WHERE userid = 'direct-old-key'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(stored.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_seal_does_not_authenticate_a_message() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut events = Tap::events(&env.topology).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = channel(&env.topology).await;

    // Every header of an intake message, naming the real transit key, but with a
    // seal (the body) the intake never made: random bytes, and the plain record.
    let submission_id = uuid::Uuid::now_v7();
    let (claimed_id, project) = (submission_id.to_string(), project_id.to_string());
    let properties = kyc_bus::lapin::BasicProperties::default().with_headers(headers::table([
        (HEADER_API_KEY, "kyc_not_a_key"),
        (HEADER_SUBMISSION_ID, claimed_id.as_str()),
        (HEADER_PROJECT_ID, project.as_str()),
        (HEADER_RECEIVED_AT, "2026-01-01T00:00:00Z"),
        (HEADER_TRANSIT_KEY_ID, TEST_TRANSIT_KEY_ID),
    ]));
    let plain = serde_json::to_vec(&record("forged")).unwrap();
    let random: Vec<u8> = (0..plain.len()).map(|_| rand_byte()).collect();
    for body in [&random, &plain] {
        publish_submission(&channel, &env.topology, body, properties.clone()).await;
    }
    let marker = serde_json::to_vec(&record("marker")).unwrap();
    publish_submission(&channel, &env.topology, &marker, with_api_key(&key)).await;

    let (_, event) = events
        .next(Duration::from_secs(10))
        .await
        .expect("the marker's event");
    assert_eq!(event.userid.as_deref(), Some("marker"));
    assert_eq!(
        env.count_rows().await,
        1,
        "the forged messages stored nothing"
    );
    assert_eq!(env.status_of(submission_id).await, None);
}

/// A byte from a fresh random UUID (no extra dependency for randomness).
fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}
