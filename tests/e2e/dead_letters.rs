//! Poison messages: a message no worker can store is retried up to the delivery
//! limit, then dead-lettered with its headers, without holding up the rest;
//! `kycctl dlq list` shows it and `kycctl dlq replay` brings it back.

use kyc_cli::dlq::{self, Selection};
use kyc_testkit::amqp::{Tap, channel, publish_submission, with_api_key};
use kyc_testkit::{TestEnv, eventually, record};
use std::time::Duration;

/// Makes every insert of a row with `userid = 'poison'` fail with a non-transient
/// error, as a row the database refuses would.
async fn refuse_poison_rows(env: &TestEnv) {
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
    let (_, key) = env.project(false).await;
    refuse_poison_rows(&env).await;
    let mut events = Tap::events(&env.topology).await;
    let _worker = env.start_worker().await;
    let (_connection, channel) = channel(&env.topology).await;

    let poison = serde_json::to_vec(&record("poison")).unwrap();
    let properties = with_api_key(&key).with_message_id("poison-1".into());
    publish_submission(&channel, &env.topology, &poison, properties).await;
    for i in 0..20 {
        let body = serde_json::to_vec(&record(&format!("fine-{i}"))).unwrap();
        publish_submission(&channel, &env.topology, &body, with_api_key(&key)).await;
    }

    // The healthy messages are not held up by the poison one.
    events.distinct(20, Duration::from_secs(20)).await;
    assert_eq!(env.count_rows().await, 20);

    let letters = eventually(
        Duration::from_secs(30),
        "the poison message in the dead queue",
        || async {
            let letters = dlq::list(&env.settings, 10).await.unwrap();
            (!letters.is_empty()).then_some(letters)
        },
    )
    .await;
    assert_eq!(
        letters.len(),
        1,
        "only the poison message dies: {letters:?}"
    );
    assert_eq!(letters[0].id, "poison-1", "listed by its message id");
    assert_eq!(letters[0].reason, "delivery_limit");
    assert_eq!(letters[0].queue, env.topology.submissions_queue());
    // Listing leaves it there.
    assert_eq!(dlq::list(&env.settings, 10).await.unwrap().len(), 1);

    // Once the cause is fixed, a replay stores it.
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
    eventually(
        Duration::from_secs(20),
        "the replayed message stored",
        || async { (env.count_rows().await == 21).then_some(()) },
    )
    .await;
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
