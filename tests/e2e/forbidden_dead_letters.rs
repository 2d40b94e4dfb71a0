//! A direct message whose API key is no longer valid is not dropped: the worker
//! moves it to the dead queue with the reason `forbidden`, still tells the sender
//! `forbidden`, and `kycctl dlq list` shows it — without its body.

use crate::dead_letter_support::await_dead_letters;
use crate::kycctl;
use kyc_bus::headers;
use kyc_cli::dlq;
use kyc_core::wire::EventKind;
use kyc_testkit::amqp::{Tap, channel as open_channel, publish_submission, with_api_key};
use kyc_testkit::{TestEnv, record};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_with_a_revoked_key_is_dead_lettered_with_its_reason() {
    let env = TestEnv::new().await;
    let (project_id, old_key) = env.project(false).await;
    let new_key = env.store.rotate_key(project_id).await.unwrap();
    let _worker = env.start_worker().await;
    let mut replies = Tap::queue(&env.topology).await;
    let (_connection, channel) = open_channel(&env.topology).await;

    let body = serde_json::to_vec(&record("revoked-key-user")).unwrap();
    let properties = with_api_key(&old_key)
        .with_message_id("revoked-1".into())
        .with_reply_to(replies.queue.as_str().into())
        .with_correlation_id("c-1".into());
    publish_submission(&channel, &env.topology, &body, properties).await;

    // The sender still learns `forbidden`.
    let (correlation, event) = replies
        .next(Duration::from_secs(15))
        .await
        .expect("the forbidden reply");
    assert_eq!(correlation.as_deref(), Some("c-1"));
    assert_eq!(event.event, EventKind::Rejected);
    assert_eq!(
        event.error_code.map(|c| c.as_str()),
        Some("forbidden"),
        "{event:?}"
    );

    // The message itself is in the dead queue, with the reason.
    let letters = await_dead_letters(
        &env,
        Duration::from_secs(15),
        "the revoked-key message in the dead queue",
    )
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].id, "revoked-1");
    assert_eq!(letters[0].reason, "forbidden");
    assert_eq!(letters[0].queue, env.topology.submissions_queue());
    assert_eq!(env.count_rows().await, 0, "nothing stored");

    // The dead letter is the message as sent, plus the reason header.
    let (_c2, peek) = open_channel(&env.topology).await;
    let message = peek
        .basic_get(
            env.topology.dead_queue().into(),
            kyc_bus::lapin::options::BasicGetOptions { no_ack: false },
        )
        .await
        .unwrap()
        .expect("a dead message");
    assert_eq!(message.delivery.data, body);
    assert_eq!(
        headers::get(&message.delivery.properties, headers::DEAD_REASON),
        Some("forbidden")
    );
    let _ = peek.close(200, "peeked".into()).await;

    // kycctl shows id and reason, never the body nor the key.
    for args in [&["dlq", "list"][..], &["dlq", "list", "--json"][..]] {
        let shown = kycctl::stdout(&kycctl::run(&env, args).await);
        assert!(shown.contains("revoked-1"), "{shown}");
        assert!(shown.contains("forbidden"), "{shown}");
        assert!(!shown.contains("revoked-key-user"), "no body: {shown}");
        assert!(!shown.contains(&old_key), "no key: {shown}");
    }

    // Replayed as is (the key is still revoked), it dies again as a fresh
    // message: the replay dropped the old reason, the worker set it anew.
    let _ = new_key;
    assert_eq!(
        dlq::replay(&env.settings, &dlq::Selection::All)
            .await
            .unwrap(),
        1
    );
    let again = await_dead_letters(
        &env,
        Duration::from_secs(15),
        "the replayed message dead again",
    )
    .await;
    assert_eq!(again[0].reason, "forbidden");
}
