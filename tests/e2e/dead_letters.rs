//! Poison messages: a message no worker can store is retried up to the delivery
//! limit, then dead-lettered with its headers, without holding up the rest;
//! on that last delivery the worker records `processing_error`, so the client
//! learns an outcome; `kycctl dlq list` shows it and `kycctl dlq replay` brings
//! it back, turning the result into `accepted`.

use crate::dead_letter_support::await_dead_letters;
use kyc_cli::dlq::{self, Selection};
use kyc_core::id::submission_id;
use kyc_core::wire::EventKind;
use kyc_core::{ErrorCode, Rejection};
use kyc_store::submissions::Outcome;
use kyc_testkit::amqp::{Tap, channel, publish_submission, with_api_key};
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::time::Duration;

/// Makes every insert of a row with `userid = 'poison'` fail with a non-transient
/// error, as a row the database refuses would.
pub(crate) async fn refuse_poison_rows(env: &TestEnv) {
    for sql in [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.userid = 'poison' THEN RAISE EXCEPTION 'refused by test trigger'; END IF;
           RETURN NEW;
         END $$",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON submissions FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ] {
        sqlx::query(sql).execute(env.store.pool()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_after_the_delivery_limit_and_replayed() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    refuse_poison_rows(&env).await;
    let mut events = Tap::events(&env.topology).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let (_connection, channel) = channel(&env.topology).await;

    let poison = serde_json::to_vec(&record("poison")).unwrap();
    let properties = with_api_key(&key).with_message_id("poison-1".into());
    publish_submission(&channel, &env.topology, &poison, properties).await;
    let poison_id = submission_id(project_id, Some("poison-1"));
    for i in 0..20 {
        let body = serde_json::to_vec(&record(&format!("fine-{i}"))).unwrap();
        publish_submission(&channel, &env.topology, &body, with_api_key(&key)).await;
    }

    // The healthy messages are not held up by the poison one, and on its last
    // delivery the poison one is announced as a processing error: 21 events.
    let announced = events.distinct(21, Duration::from_secs(30)).await;
    let event = &announced[&poison_id];
    assert_eq!(event.event, EventKind::Rejected, "{event:?}");
    assert_eq!(
        event.error_code,
        Some(ErrorCode::ProcessingError),
        "{event:?}"
    );
    assert_eq!(event.userid.as_deref(), Some("poison"), "{event:?}");
    assert_eq!(
        event.idempotency_key.as_deref(),
        Some("poison-1"),
        "{event:?}"
    );

    let letters = await_dead_letters(
        &env,
        Duration::from_secs(30),
        "the poison message in the dead queue",
    )
    .await;
    assert_eq!(
        letters.len(),
        1,
        "only the poison message dies: {letters:?}"
    );
    assert_eq!(letters[0].id, "poison-1", "listed by its message id");
    // Rejected without requeue on its last allowed delivery.
    assert_eq!(letters[0].reason, "rejected");
    assert_eq!(letters[0].queue, env.topology.submissions_queue());
    // Listing leaves it there.
    assert_eq!(dlq::list(&env.settings, 10).await.unwrap().len(), 1);

    // The client learns the outcome: a rejected row, with no fields kept.
    assert_eq!(env.count_rows().await, 21);
    let result = api.result(&key, poison_id).await;
    assert_eq!(result.status, 200, "{:?}", result.body);
    assert_eq!(result.body["status"], "rejected", "{:?}", result.body);
    assert_eq!(
        result.body["errorCode"], "processing_error",
        "{:?}",
        result.body
    );
    assert_eq!(result.body["message"], "Failed to complete migration");

    // Once the cause is fixed, a replay stores it: the final state wins.
    sqlx::query("DROP TRIGGER refuse_poison ON submissions")
        .execute(env.store.pool())
        .await
        .unwrap();
    let replayed = dlq::replay(
        &env.settings,
        &Selection::Ids(["poison-1".to_owned()].into()),
    )
    .await
    .unwrap();
    assert_eq!(replayed, 1);
    let (_, event) = events.until(poison_id, Duration::from_secs(20)).await;
    assert_eq!(
        event.event,
        EventKind::Accepted,
        "after the replay: {event:?}"
    );
    assert_eq!(env.status_of(poison_id).await.as_deref(), Some("accepted"));
    let result = api.result(&key, poison_id).await;
    assert_eq!(result.status, 200, "{:?}", result.body);
    assert_eq!(result.body["status"], "accepted", "{:?}", result.body);
    assert!(result.body.get("errorCode").is_none(), "{:?}", result.body);
    assert_eq!(env.count_rows().await, 21, "replaced, not added");
    assert!(
        dlq::list(&env.settings, 10).await.unwrap().is_empty(),
        "the dead queue is empty after the replay"
    );
    let (userid,): (String,) =
        sqlx::query_as("SELECT userid FROM submissions WHERE idempotency_key = 'poison-1'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(userid, "poison");
}

/// Only `processing_error` gives way to a later outcome: any other stored
/// verdict is final, and an accepted row is never replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_processing_error_is_replaced_by_a_later_outcome() {
    let env = TestEnv::new().await;
    let (project_id, _) = env.project(false).await;
    let key =
        kyc_store::DataKey::from_base64("test", &kyc_testkit::TEST_DATA_KEY.to_owned().into())
            .unwrap();
    let outcome = |id: uuid::Uuid, result: Result<kyc_core::Submission, Rejection>| Outcome {
        id,
        project_id,
        received_at: time::OffsetDateTime::now_utc(),
        idempotency_key: None,
        result,
    };
    let valid = || {
        kyc_core::submission::RawSubmission::from_slice(
            &serde_json::to_vec(&record("later")).unwrap(),
        )
        .and_then(|raw| raw.validate(kyc_core::submission::today_utc()))
    };
    let cases = [
        (Rejection::new(ErrorCode::ProcessingError), "accepted"),
        (Rejection::new(ErrorCode::InvalidAdmin), "rejected"),
    ];
    for (first, expected) in cases {
        let id = uuid::Uuid::now_v7();
        let code = first.code;
        env.store
            .store_batch(&[outcome(id, Err(first))], &key)
            .await
            .unwrap();
        let verdicts = env
            .store
            .store_batch(&[outcome(id, valid())], &key)
            .await
            .unwrap();
        assert_eq!(
            env.status_of(id).await.as_deref(),
            Some(expected),
            "{code:?} then accepted"
        );
        assert_eq!(verdicts[0].accepted, expected == "accepted", "{code:?}");
        // Accepted stays accepted, whatever comes later.
        env.store
            .store_batch(
                &[outcome(id, Err(Rejection::new(ErrorCode::ProcessingError)))],
                &key,
            )
            .await
            .unwrap();
        assert_eq!(env.status_of(id).await.as_deref(), Some(expected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_client_learns_processing_error_when_its_submission_cannot_be_stored() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    refuse_poison_rows(&env).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    // The worker tries every delivery the queue allows, then records
    // `processing_error`; the client holding `?wait` open gets it as a 400.
    let reply = api
        .post(
            "/v3/submission/migration?wait=30",
            Some(&key),
            serde_json::to_vec(&record("poison")).unwrap(),
            &[("idempotency-key", "poison-wait")],
        )
        .await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(
        reply.error_code(),
        Some("processing_error"),
        "{:?}",
        reply.body
    );
    assert_eq!(reply.body["message"], "Failed to complete migration");
    let id = submission_id(project_id, Some("poison-wait"));
    assert_eq!(
        env.status_of(id).await.as_deref(),
        Some("rejected"),
        "the outcome is stored too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_message_is_listed_by_the_id_in_its_sealed_prefix_and_replayed() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    refuse_poison_rows(&env).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    // No idempotency key, so no message_id: the only id on the message is the
    // one in its transit version 2 prefix.
    let reply = api
        .submit_raw(
            Some(&key),
            serde_json::to_vec(&record("poison")).unwrap(),
            &[],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();

    let letters = await_dead_letters(
        &env,
        Duration::from_secs(30),
        "the intake's message in the dead queue",
    )
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].id, id.to_string(), "listed by its submission id");
    assert_eq!(env.status_of(id).await.as_deref(), Some("rejected"));

    sqlx::query("DROP TRIGGER refuse_poison ON submissions")
        .execute(env.store.pool())
        .await
        .unwrap();
    let replayed = dlq::replay(&env.settings, &Selection::Ids([id.to_string()].into()))
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    // Still sealed and still the intake's: stored under the id the client holds.
    eventually(
        Duration::from_secs(20),
        "the replayed row accepted",
        || async { (env.status_of(id).await.as_deref() == Some("accepted")).then_some(()) },
    )
    .await;
    assert_eq!(env.count_rows().await, 1, "replaced, not added");
}
