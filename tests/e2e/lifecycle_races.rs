//! A DELETE wins over everything in flight: a create of the id still queued, a
//! redelivery, a replay from the dead letters, a worker storing at the same
//! moment. And the events of committed changes survive a crash before publish.

use crate::lifecycle_support::{LifecycleTap, assert_error, delete, store_one};
use kyc_cli::dlq::{self, Selection};
use kyc_core::ErrorCode;
use kyc_core::id::submission_id;
use kyc_core::wire::EventKind;
use kyc_store::lifecycle::erase::Erasure;
use kyc_testkit::amqp::{Tap, channel, publish_submission, with_api_key};
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::time::Duration;

/// Whether the row of `id` holds any personal value (`userid`, `email`).
async fn holds_data(env: &TestEnv, id: uuid::Uuid) -> bool {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT userid, email FROM submissions WHERE id = $1")
            .bind(id)
            .fetch_optional(env.store.pool())
            .await
            .unwrap();
    row.is_some_and(|(u, e)| u.is_some() || e.is_some())
}

/// The documented case: the create is accepted (200) but no worker has stored
/// it yet. The DELETE answers `invalid_submission` — nothing is stored under
/// that id yet — and records the erasure: the create is never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_before_the_worker_stored_the_create_wins() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let mut events = Tap::events(&env.topology).await;

    let reply = api.submit(&key, &record("queued")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    assert_eq!(
        kyc_testkit::amqp::queue_depth(&env.topology).await,
        1,
        "still queued"
    );
    let reply = delete(&api, &key, &format!("submission_id={id}")).await;
    assert_error(&reply, 400, "invalid_submission");

    let _worker = env.start_worker().await;
    let (_, event) = events.until(id, Duration::from_secs(15)).await;
    assert_eq!(event.event, EventKind::Rejected, "{event:?}");
    assert_eq!(event.error_code, Some(ErrorCode::InvalidSubmission));
    assert_eq!(env.count_rows().await, 0, "the create was not stored");
    assert_eq!(api.result(&key, id).await.status, 404);
}

/// The same message delivered again after the DELETE (a redelivery, or a
/// client re-sending under its idempotency key) is not stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_delete_does_not_bring_the_data_back() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let mut events = Tap::events(&env.topology).await;
    let (_connection, channel) = channel(&env.topology).await;
    let body = serde_json::to_vec(&record("redelivered")).unwrap();
    let properties = || with_api_key(&key).with_message_id("redeliver-1".into());
    let id = submission_id(project_id, Some("redeliver-1"));

    publish_submission(&channel, &env.topology, &body, properties()).await;
    let (_, event) = events.until(id, Duration::from_secs(15)).await;
    assert_eq!(event.event, EventKind::Accepted);
    assert_eq!(
        delete(&api, &key, &format!("submission_id={id}"))
            .await
            .status,
        200
    );
    assert!(!holds_data(&env, id).await);

    publish_submission(&channel, &env.topology, &body, properties()).await;
    let (_, event) = events.until(id, Duration::from_secs(15)).await;
    assert_eq!(event.event, EventKind::Rejected, "{event:?}");
    assert_eq!(event.error_code, Some(ErrorCode::InvalidSubmission));
    assert_eq!(
        event.userid, None,
        "the erased person's userid is not announced"
    );
    assert!(!holds_data(&env, id).await, "the data came back");
    assert_eq!(env.count_rows().await, 1);
}

/// A message dead-lettered (its row says `processing_error`), deleted, then
/// replayed: the replay is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_after_delete_is_not_stored() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
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
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let mut events = Tap::events(&env.topology).await;
    let (_connection, channel) = channel(&env.topology).await;
    let body = serde_json::to_vec(&record("poison")).unwrap();
    publish_submission(
        &channel,
        &env.topology,
        &body,
        with_api_key(&key).with_message_id("poison-1".into()),
    )
    .await;
    let id = submission_id(project_id, Some("poison-1"));
    let (_, event) = events.until(id, Duration::from_secs(30)).await;
    assert_eq!(event.error_code, Some(ErrorCode::ProcessingError));
    eventually(
        Duration::from_secs(30),
        "the poison message dead-lettered",
        || async { (!dlq::list(&env.settings, 10).await.unwrap().is_empty()).then_some(()) },
    )
    .await;

    sqlx::query("DROP TRIGGER refuse_poison ON submissions")
        .execute(env.store.pool())
        .await
        .unwrap();
    let reply = delete(&api, &key, &format!("submission_id={id}")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let replayed = dlq::replay(
        &env.settings,
        &Selection::Ids(["poison-1".to_owned()].into()),
    )
    .await
    .unwrap();
    assert_eq!(replayed, 1);
    let (_, event) = events.until(id, Duration::from_secs(20)).await;
    assert_eq!(event.event, EventKind::Rejected, "{event:?}");
    assert_eq!(event.error_code, Some(ErrorCode::InvalidSubmission));
    assert!(
        !holds_data(&env, id).await,
        "the replay brought the data back"
    );
    assert_eq!(env.status_of(id).await.as_deref(), Some("rejected"));
}

/// Creates and DELETEs of the same ids at the same moment: whichever the
/// database sees first, no erased id ends up holding data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_racing_the_worker_always_win() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let mut events = Tap::events(&env.topology).await;
    let (_connection, channel) = channel(&env.topology).await;

    let n = 60;
    let mut ids = Vec::new();
    let mut deletes = Vec::new();
    for i in 0..n {
        let idem = format!("race-{i}");
        let id = submission_id(project_id, Some(&idem));
        let body = serde_json::to_vec(&record(&format!("race-{i}"))).unwrap();
        publish_submission(
            &channel,
            &env.topology,
            &body,
            with_api_key(&key).with_message_id(idem.into()),
        )
        .await;
        let (api, key) = (api.clone(), key.clone());
        deletes.push(tokio::spawn(async move {
            delete(&api, &key, &format!("submission_id={id}"))
                .await
                .status
                .as_u16()
        }));
        ids.push(id);
    }
    let mut answered = Vec::new();
    for d in deletes {
        answered.push(d.await.unwrap());
    }
    assert!(
        answered.iter().all(|s| *s == 200 || *s == 400),
        "{answered:?}"
    );
    // Every create is processed (stored then erased, or refused) …
    let seen = events.distinct(n, Duration::from_secs(30)).await;
    assert_eq!(seen.len(), n);
    // … and none holds data.
    for id in ids {
        assert!(
            !holds_data(&env, id).await,
            "{id} holds data after its DELETE"
        );
    }
}

/// A change committed by an intake that died before publishing its event: the
/// event is in the outbox, and the next intake's relay sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_crash_is_published_by_the_next_intake() {
    let env = TestEnv::new().await;
    let (project_id, _) = env.project(false).await;
    let id = store_one(&env, project_id, &record("crash")).await;
    // What the intake commits, without an intake to publish it.
    env.store
        .erase(&Erasure {
            project_id,
            submission_id: id,
            admin: None,
            groups: None,
        })
        .await
        .unwrap();
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox WHERE sent_at IS NULL")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(unsent, 1);

    let mut events = LifecycleTap::open(&env.topology).await;
    let _intake = env.start_intake().await;
    let event = events.next(Duration::from_secs(10)).await;
    assert_eq!(event.event, "submission.deleted");
    assert_eq!(event.submission_id, id);
    eventually(Duration::from_secs(10), "the event marked sent", || async {
        let unsent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM event_outbox WHERE sent_at IS NULL")
                .fetch_one(env.store.pool())
                .await
                .unwrap();
        (unsent == 0).then_some(())
    })
    .await;
}
