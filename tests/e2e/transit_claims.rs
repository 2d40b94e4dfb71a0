//! Transit trust boundaries (`docs/api.md` §10): direct publishers claim nothing they
//! do not own, reply_to reaches only reply queues, the services refuse to start
//! without keys, and a stored verdict is read back only by its own project.

use kyc_bus::headers;
use kyc_bus::lapin::BasicProperties;
use kyc_bus::lapin::options::{BasicGetOptions, QueueDeclareOptions};
use kyc_bus::lapin::types::FieldTable;
use kyc_core::id::{content_key, submission_id};
use kyc_core::wire::{
    EventKind, HEADER_API_KEY, HEADER_IDEMPOTENCY_KEY, HEADER_PROJECT_ID, HEADER_RECEIVED_AT,
    HEADER_SUBMISSION_ID, HEADER_TRANSIT_KEY_ID,
};
use kyc_testkit::amqp::{self, Tap, publish_submission, with_api_key};
use kyc_testkit::{Api, TEST_TRANSIT_KEY_ID, TestEnv, record};
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_publisher_cannot_claim_another_projects_submission_id() {
    let env = TestEnv::new().await;
    let (project_a, key_a) = env.project(false).await;
    let (project_b, key_b) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let (_connection, channel) = amqp::channel(&env.topology).await;

    // The id B's submission with this Idempotency-Key will get.
    let idempotency_key = "b-order-1";
    let target = submission_id(project_b, Some(idempotency_key));
    let target_text = target.to_string();
    let project_b_text = project_b.to_string();
    let claims = headers::table([
        (HEADER_API_KEY, key_a.as_str()),
        (HEADER_SUBMISSION_ID, target_text.as_str()),
        (HEADER_PROJECT_ID, project_b_text.as_str()),
        (HEADER_RECEIVED_AT, "2020-01-01T00:00:00Z"),
        (HEADER_IDEMPOTENCY_KEY, idempotency_key),
        (HEADER_TRANSIT_KEY_ID, TEST_TRANSIT_KEY_ID),
    ]);
    // A claims B's id twice: once with a message_id of its own, once without.
    let with_id = serde_json::to_vec(&record("a-claim-1")).unwrap();
    let without_id = serde_json::to_vec(&record("a-claim-2")).unwrap();
    let properties = BasicProperties::default().with_headers(claims);
    publish_submission(
        &channel,
        &env.topology,
        &with_id,
        properties.clone().with_message_id("a-msg".into()),
    )
    .await;
    publish_submission(&channel, &env.topology, &without_id, properties).await;

    let _worker = env.start_worker().await;
    let a_first = submission_id(project_a, Some("a-msg"));
    let a_second = submission_id(project_a, Some(&content_key(&without_id)));
    assert_eq!(env.await_row(a_first, WAIT).await, "accepted");
    assert_eq!(env.await_row(a_second, WAIT).await, "accepted");
    assert_eq!(env.status_of(target).await, None, "A occupied no id of B");

    // B's own submission takes its id.
    let reply = api
        .submit_raw(
            Some(&key_b),
            serde_json::to_vec(&record("b-own")).unwrap(),
            &[("idempotency-key", idempotency_key)],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.submission_id(), target);
    assert_eq!(env.await_row(target, WAIT).await, "accepted");

    let by_b = api.result(&key_b, target).await;
    assert_eq!(by_b.status, 200, "{:?}", by_b.body);
    assert_eq!(by_b.body["status"], "accepted");
    assert_eq!(
        api.result(&key_a, target).await.status,
        404,
        "A cannot see it"
    );

    let owners: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT id, project_id, userid FROM submissions WHERE id = ANY($1) ORDER BY userid",
    )
    .bind(vec![a_first, a_second, target])
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    let expected = [
        (a_first, project_a, "a-claim-1"),
        (a_second, project_a, "a-claim-2"),
        (target, project_b, "b-own"),
    ]
    .map(|(id, project, userid)| (id, project, userid.to_owned()));
    assert_eq!(owners, expected);
    // A's claimed receive time was not believed either.
    let (a_received,): (time::OffsetDateTime,) =
        sqlx::query_as("SELECT received_at FROM submissions WHERE id = $1")
            .bind(a_first)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert!(a_received.year() > 2020, "received_at {a_received}");
    // And A's message was not counted as B's idempotency key.
    let (a_key,): (Option<String>,) =
        sqlx::query_as("SELECT idempotency_key FROM submissions WHERE id = $1")
            .bind(a_second)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(a_key, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_to_outside_the_reply_queues_gets_no_reply_but_the_event_is_published() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let mut events = Tap::events(&env.topology).await;
    let mut replies = Tap::queue(&env.topology).await;
    let (connection, channel) = amqp::channel(&env.topology).await;

    // A queue named by a client, outside `amq.gen-…` and `<prefix>.reply.*`.
    let victim = format!("{}.victim", env.topology.prefix());
    let victim_channel = connection.create_channel().await.unwrap();
    victim_channel
        .queue_declare(
            victim.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    let refused = with_api_key(&key)
        .with_message_id("to-victim".into())
        .with_reply_to(victim.as_str().into())
        .with_correlation_id("victim".into());
    let allowed = with_api_key(&key)
        .with_message_id("to-tap".into())
        .with_reply_to(replies.queue.as_str().into())
        .with_correlation_id("tap".into());
    let body = |userid: &str| serde_json::to_vec(&record(userid)).unwrap();
    publish_submission(&channel, &env.topology, &body("victim"), refused).await;
    publish_submission(&channel, &env.topology, &body("tap"), allowed).await;
    let _worker = env.start_worker().await;

    let refused_id = submission_id(project_id, Some("to-victim"));
    let (_, event) = events.until(refused_id, WAIT).await;
    assert_eq!(event.event, EventKind::Accepted, "the event is published");
    let (correlation, reply) = replies.next(WAIT).await.expect("the allowed reply");
    assert_eq!(correlation.as_deref(), Some("tap"));
    assert_eq!(
        reply.submission_id,
        submission_id(project_id, Some("to-tap"))
    );
    let leaked = victim_channel
        .basic_get(victim.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(leaked.is_none(), "no reply in the victim queue");
}

#[tokio::test]
async fn services_refuse_to_start_without_keys_unless_dev() {
    use kyc_config::Settings;
    use secrecy::SecretString;
    const KEY: &str = "BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=";

    let mut settings = Settings::default();
    settings.http.addr = ([127, 0, 0, 1], 0).into();
    let intake_error = |settings: &Settings| {
        kyc_intake::IntakeOptions::from_settings(settings)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let worker_error = |settings: &Settings| {
        kyc_worker::Worker::from_settings(settings)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };

    // Nothing configured: the data key is named first.
    assert!(
        intake_error(&settings).starts_with("KYC__CRYPTO__DATA_KEY is not set"),
        "{}",
        intake_error(&settings)
    );
    assert!(worker_error(&settings).starts_with("KYC__CRYPTO__DATA_KEY is not set"));
    // A data key alone: the transit key is named.
    settings.crypto.data_key = Some(SecretString::from(KEY));
    assert!(
        intake_error(&settings).starts_with("KYC__CRYPTO__TRANSIT_KEY is not set"),
        "{}",
        intake_error(&settings)
    );
    assert!(worker_error(&settings).starts_with("KYC__CRYPTO__TRANSIT_KEY is not set"));
    let build =
        kyc_intake::Intake::from_settings(&settings, kyc_config::telemetry::metrics()).await;
    assert!(
        build
            .err()
            .is_some_and(|e| e.to_string().contains("KYC__CRYPTO__TRANSIT_KEY")),
        "Intake::from_settings refuses too"
    );

    // Both keys, or dev: they build.
    settings.crypto.transit_key = Some(SecretString::from(KEY));
    assert!(kyc_intake::IntakeOptions::from_settings(&settings).is_ok());
    assert!(kyc_worker::Worker::from_settings(&settings).is_ok());
    let dev = Settings {
        dev: true,
        ..Settings::default()
    };
    assert!(kyc_intake::IntakeOptions::from_settings(&dev).is_ok());
    assert!(kyc_worker::Worker::from_settings(&dev).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_verdict_is_read_back_only_for_its_own_project() {
    use kyc_core::{ErrorCode, Rejection};
    use kyc_store::DataKey;
    use kyc_store::submissions::Outcome;
    let env = TestEnv::new().await;
    let (project_a, _) = env.project(false).await;
    let (project_b, _) = env.project(false).await;
    let key = DataKey::from_base64(
        "test",
        &secrecy::SecretString::from(kyc_testkit::TEST_DATA_KEY),
    )
    .unwrap();
    let outcome = |project_id, code| Outcome {
        id: submission_id(project_a, Some("shared")),
        project_id,
        received_at: time::OffsetDateTime::now_utc(),
        idempotency_key: None,
        result: Err(Rejection::new(code)),
    };
    let stored = env
        .store
        .store_batch(&[outcome(project_a, ErrorCode::InvalidAdmin)], &key)
        .await
        .unwrap();
    assert_eq!(stored[0].error_code, Some(ErrorCode::InvalidAdmin));
    // The same id again for A: A's stored verdict. For B: not A's verdict.
    let again = env
        .store
        .store_batch(&[outcome(project_a, ErrorCode::InvalidProject)], &key)
        .await
        .unwrap();
    assert_eq!(again[0].error_code, Some(ErrorCode::InvalidAdmin));
    assert!(
        env.store
            .store_batch(&[outcome(project_b, ErrorCode::InvalidProject)], &key)
            .await
            .is_err(),
        "another project's row is never this outcome's verdict"
    );
}
