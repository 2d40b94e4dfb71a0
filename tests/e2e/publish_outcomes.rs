//! "200 means durably queued", checked at every publisher against the real
//! broker's failure answers (`docs/api.md` §11):
//!
//! - a **nack**: a policy puts the test's submissions queue at a length limit
//!   of 0 with `reject-publish`, so the broker refuses every publish to it;
//! - a **return**: the submissions queue is unbound from its exchange, so a
//!   mandatory publish has no route;
//!
//! and what each publisher must then do: the intake answers 503 with
//! `Retry-After` and nothing is stored; `kycctl push` exits non-zero naming the
//! line; the worker keeps the batch unacknowledged and announces again until the
//! broker confirms its events (a refused *reply* does not hold the batch);
//! `kycctl dlq replay` leaves the dead letter where it is.
//! (A confirm that never comes, with the broker up, is the memory-alarm fault
//! test: an alarm blocks the whole shared broker.)

use crate::kycctl;
use kyc_bus::Topology;
use kyc_bus::lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::lapin::{BasicProperties, Channel};
use kyc_core::wire::{ResultEventV1, SUBMISSION_ROUTING_KEY};
use kyc_testkit::amqp::{channel, publish_submission, with_api_key};
use kyc_testkit::http::Reply;
use kyc_testkit::{Api, TestEnv, eventually, record};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// A RabbitMQ policy on one queue of this test, removed when dropped (also when
/// the test fails). Policies are the broker's own way to change a live queue's
/// limits; the pattern names exactly one queue, so parallel tests are untouched.
struct QueuePolicy {
    name: String,
}

impl QueuePolicy {
    /// `max-length 0, overflow reject-publish` on `queue`: every publish to it is
    /// nacked.
    async fn reject_all(queue: &str) -> QueuePolicy {
        QueuePolicy::max_length(queue, 0).await
    }

    /// `max-length n, overflow reject-publish` on `queue`: a publish it cannot
    /// take is nacked.
    async fn max_length(queue: &str, n: u32) -> QueuePolicy {
        let name = format!("{queue}.reject");
        let pattern = format!("^{}$", queue.replace('.', "\\."));
        let definition = format!(r#"{{"max-length":{n},"overflow":"reject-publish"}}"#);
        rabbitmqctl(&[
            "set_policy",
            "--apply-to",
            "queues",
            "--priority",
            "100",
            &name,
            &pattern,
            &definition,
        ])
        .await;
        QueuePolicy { name }
    }

    async fn clear(self) {
        rabbitmqctl(&["clear_policy", &self.name]).await;
        // Cleared: nothing left for `Drop`.
        std::mem::forget(self);
    }
}

impl Drop for QueuePolicy {
    fn drop(&mut self) {
        // Best effort, never a panic: the test is failing already.
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "clear_policy", &self.name])
            .output();
    }
}

/// Runs `rabbitmqctl -q args…` off the async runtime and returns its output;
/// fails the test if it fails.
async fn rabbitmqctl(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let shown = args.join(" ");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("rabbitmqctl").arg("-q").args(&args).output()
    })
    .await
    .expect("the blocking task")
    .unwrap_or_else(|e| panic!("running rabbitmqctl (is RabbitMQ installed here?): {e}"));
    assert!(
        output.status.success(),
        "rabbitmqctl {shown}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Unbinds (`bound = false`) or binds again the submissions queue from its exchange.
async fn route_submissions(channel: &Channel, topology: &Topology, bound: bool) {
    let (queue, exchange) = (
        topology.submissions_queue(),
        topology.submissions_exchange(),
    );
    if bound {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                SUBMISSION_ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the submissions queue");
    } else {
        channel
            .queue_unbind(
                queue.as_str().into(),
                exchange.as_str().into(),
                SUBMISSION_ROUTING_KEY.into(),
                FieldTable::default(),
            )
            .await
            .expect("unbind the submissions queue");
    }
}

/// The answer the contract gives when the broker did not take a submission.
fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {:?}", reply.body);
    assert_eq!(
        reply.error_code(),
        Some("unavailable"),
        "{what}: {:?}",
        reply.body
    );
    assert_eq!(
        reply.retry_after.as_deref(),
        Some("1"),
        "{what}: a 503 carries Retry-After"
    );
}

/// Submits `{name}-1`, `{name}-2`, … until one is refused (at most `within`),
/// adding those answered 200 to `accepted`: a policy reaches a quorum queue a
/// moment after the broker accepted it, and until then a publish may still be
/// taken (and then counts as accepted).
async fn submit_until_refused(
    api: &Api,
    key: &str,
    name: &str,
    within: Duration,
    accepted: &mut BTreeSet<String>,
) -> Reply {
    let deadline = tokio::time::Instant::now() + within;
    for n in 1.. {
        let userid = format!("{name}-{n}");
        let reply = api.submit(key, &record(&userid)).await;
        if reply.status != 200 {
            return reply;
        }
        accepted.insert(userid);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no submission refused within {within:?} ({n} accepted)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!("the loop returns or fails")
}

/// With a worker running: waits until every submission answered 200 is stored
/// and the queue is empty, and checks that exactly those were stored (a 503
/// stored nothing).
async fn assert_stored_exactly(env: &TestEnv, accepted: &BTreeSet<String>) {
    eventually(
        Duration::from_secs(30),
        "every 200 stored and the queue drained",
        || async {
            let stored = env.rows_per_userid().await;
            let depth = kyc_testkit::amqp::queue_depth(&env.topology).await;
            (depth == 0 && accepted.iter().all(|u| stored.contains_key(u))).then_some(())
        },
    )
    .await;
    let stored: BTreeSet<String> = env.rows_per_userid().await.into_keys().collect();
    assert_eq!(
        &stored, accepted,
        "stored are exactly the submissions answered 200"
    );
    env.assert_userids_stored_once(accepted).await;
}

/// Submits `userid` until the intake answers 200 again (within 20 s).
async fn submit_until_accepted(api: &Api, key: &str, userid: &str) {
    eventually(Duration::from_secs(20), "a 200 again", || async {
        (api.submit(key, &record(userid)).await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_answers_503_when_the_broker_nacks_and_stores_nothing() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    // One submission waits in the queue (no worker yet).
    let before = api.submit(&key, &record("before")).await;
    assert_eq!(before.status, 200, "{:?}", before.body);
    let mut accepted = BTreeSet::from(["before".to_owned()]);

    // The queue is full at one message: every publish is nacked.
    let policy = QueuePolicy::max_length(&env.topology.submissions_queue(), 1).await;
    let first = submit_until_refused(
        &api,
        &key,
        "applying",
        Duration::from_secs(20),
        &mut accepted,
    )
    .await;
    assert_unavailable(&first, "the first nacked submission");
    for i in 0..20 {
        let userid = format!("nacked-{i}");
        assert_unavailable(&api.submit(&key, &record(&userid)).await, &userid);
    }

    // A worker drains the queue: it takes publishes again, policy or not.
    let _worker = env.start_worker().await;
    submit_until_accepted(&api, &key, "after").await;
    accepted.insert("after".to_owned());
    policy.clear().await;
    assert_stored_exactly(&env, &accepted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_answers_503_when_the_broker_returns_a_submission_and_stores_nothing() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let api = Api::new(intake.addr.unwrap());
    let (_connection, channel) = channel(&env.topology).await;

    let before = api.submit(&key, &record("before")).await;
    assert_eq!(before.status, 200, "{:?}", before.body);

    // Unbinding is synchronous: from its answer on, nothing routes.
    route_submissions(&channel, &env.topology, false).await;
    for i in 0..20 {
        let userid = format!("returned-{i}");
        assert_unavailable(&api.submit(&key, &record(&userid)).await, &userid);
    }
    route_submissions(&channel, &env.topology, true).await;

    let after = api.submit(&key, &record("after")).await;
    assert_eq!(after.status, 200, "{:?}", after.body);
    let _worker = env.start_worker().await;
    let accepted = ["before", "after"].map(str::to_owned).into();
    assert_stored_exactly(&env, &accepted).await;
}

/// Declares `name`, bound to the events exchange for every event.
async fn events_queue(channel: &Channel, topology: &Topology, name: &str) {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare the events queue");
    channel
        .queue_bind(
            name.into(),
            topology.events_exchange().as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind the events queue");
}

/// Whether the broker nacks a message published straight to `queue`.
async fn nacks(channel: &Channel, queue: &str) -> bool {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            b"probe",
            BasicProperties::default(),
        )
        .await
        .expect("publish a probe")
        .await
        .expect("its confirm");
    confirm.is_nack()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_announces_until_the_broker_confirms_and_acks_only_then() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let (_connection, channel) = channel(&env.topology).await;
    // A downstream queue that refuses every event: the broker nacks each one.
    let downstream = format!("{}.downstream", env.topology.prefix());
    events_queue(&channel, &env.topology, &downstream).await;
    let policy = refuse_all(&channel, &downstream).await;
    let intake = env.start_intake().await;
    let worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());

    let reply = api.submit(&key, &record("nacked-event")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.submission_id();
    // Stored, but the batch is not acknowledged while its event is refused: the
    // submission stays in the queue, unacknowledged.
    env.await_row(id, Duration::from_secs(20)).await;
    // Stopped, the worker hands back what it did not acknowledge: the
    // submission is ready in the queue again (had the worker taken the nack for
    // success, it would be gone).
    worker.shutdown().await.expect("the worker stops");
    assert_eq!(
        kyc_testkit::amqp::queue_depth(&env.topology).await,
        1,
        "the submission stays unacknowledged while its event is refused"
    );

    // The downstream queue takes events again: the next worker stores the
    // submission again (idempotently), its event is confirmed, and only then is
    // the submission acknowledged.
    policy.clear().await;
    let _worker = env.start_worker().await;
    let (_, event) = eventually(Duration::from_secs(30), "the event downstream", || async {
        let message = channel
            .basic_get(downstream.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")?;
        let event: ResultEventV1 = serde_json::from_slice(&message.delivery.data).ok()?;
        (event.submission_id == id).then_some(((), event))
    })
    .await;
    assert_eq!(event.userid.as_deref(), Some("nacked-event"));
    eventually(
        Duration::from_secs(20),
        "the submission acknowledged",
        || async { (kyc_testkit::amqp::queue_depth(&env.topology).await == 0).then_some(()) },
    )
    .await;
    let _ = channel
        .queue_delete(downstream.as_str().into(), QueueDeleteOptions::default())
        .await;
}

/// A reply the broker refuses does not hold the batch: unlike an event, a reply
/// is a courtesy to whoever waits (the result is stored and announced), and a
/// reply queue refuses everything while its node is down — retrying until then
/// would stop the worker's lane. Stored, acknowledged, gone from the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reply_does_not_hold_the_batch() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let (_connection, channel) = channel(&env.topology).await;
    let reply_queue = format!("{}.reply.refusing", env.topology.prefix());
    channel
        .queue_declare(
            reply_queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare the reply queue");
    let _policy = refuse_all(&channel, &reply_queue).await;
    let worker = env.start_worker().await;

    let body = serde_json::to_vec(&record("refused-reply")).unwrap();
    publish_submission(
        &channel,
        &env.topology,
        &body,
        with_api_key(&key)
            .with_message_id("refused-reply".into())
            .with_reply_to(reply_queue.as_str().into()),
    )
    .await;
    let id = kyc_core::id::submission_id(project_id, Some("refused-reply"));
    env.await_row(id, Duration::from_secs(20)).await;
    // Stopped, the worker finishes the batch it holds and hands back what it
    // did not acknowledge: nothing (a batch retried while its reply is refused
    // would be back in the queue).
    worker.shutdown().await.expect("the worker stops");
    assert_eq!(
        kyc_testkit::amqp::queue_depth(&env.topology).await,
        0,
        "the submission is acknowledged though its reply was refused"
    );
    let _ = channel
        .queue_delete(reply_queue.as_str().into(), QueueDeleteOptions::default())
        .await;
}

/// Sets the reject-all policy on `queue` and waits until the broker nacks a
/// probe published straight to it.
async fn refuse_all(channel: &Channel, queue: &str) -> QueuePolicy {
    let policy = QueuePolicy::reject_all(queue).await;
    eventually(Duration::from_secs(20), "the policy refusing", || async {
        nacks(channel, queue).await.then_some(())
    })
    .await;
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_exits_non_zero_naming_the_line_the_broker_refused() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("one.jsonl");
    std::fs::write(&file, record("pushed").to_string() + "\n").unwrap();
    let (_connection, channel) = channel(&env.topology).await;

    // Every publish is nacked: push retries, then gives up naming the line.
    let _policy = refuse_all(&channel, &env.topology.submissions_queue()).await;
    let output = kycctl::run_unchecked(
        &env,
        &[
            "push",
            file.to_str().unwrap(),
            "--api-key",
            &key,
            "--idle-timeout",
            "5",
            // One message per record: the policy refuses the single-record queue.
            "--batch-size",
            "1",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "push must fail: {stderr}");
    assert!(
        stderr.contains("refused line 1"),
        "push names the refused line: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_exits_non_zero_naming_a_line_the_broker_returned() {
    const RECORDS: usize = 100_000;
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("many.jsonl");
    let lines: Vec<String> = (0..RECORDS)
        .map(|i| record(&format!("line-{i}")).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (_connection, channel) = channel(&env.topology).await;

    // Push declares the topology (binding the queue) when it starts, so the
    // queue is unbound once its first records are in: the rest are returned.
    let push = tokio::spawn({
        let (file, key) = (file.to_str().unwrap().to_owned(), key.clone());
        let env_args = (env.db_url.clone(), env.settings.clone());
        async move {
            let mut command = std::process::Command::new(kycctl::binary());
            command
                // One message per record: the single-record queue is unbound.
                .args([
                    "push",
                    &file,
                    "--api-key",
                    &key,
                    "--idle-timeout",
                    "60",
                    "--batch-size",
                    "1",
                ])
                .env("KYC__DATABASE__URL", &env_args.0)
                .env(
                    "KYC__AMQP__URL",
                    secrecy::ExposeSecret::expose_secret(&env_args.1.amqp.url),
                )
                .env("KYC__AMQP__PREFIX", &env_args.1.amqp.prefix)
                .env("RUST_LOG", "warn");
            tokio::task::spawn_blocking(move || command.output())
                .await
                .expect("the blocking task")
                .expect("running kycctl")
        }
    });
    eventually(Duration::from_secs(30), "push publishing", || async {
        (kyc_testkit::amqp::queue_depth(&env.topology).await > 0).then_some(())
    })
    .await;
    route_submissions(&channel, &env.topology, false).await;
    let output = push.await.expect("the push task");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "push must fail: {stderr}");
    assert!(
        stderr.contains("the broker returned line ") && stderr.contains("as unroutable"),
        "push names a returned line: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_the_broker_refuses_leaves_the_dead_letter_in_place() {
    let env = TestEnv::new().await;
    let worker = env.start_worker().await;
    let (_connection, channel) = channel(&env.topology).await;
    // A message with an unknown API key is dead-lettered at once (`forbidden`).
    let body = serde_json::to_vec(&record("dead")).unwrap();
    let properties = with_api_key("not-a-key").with_message_id("dead-1".into());
    publish_submission(&channel, &env.topology, &body, properties).await;
    eventually(Duration::from_secs(20), "the dead letter", || async {
        (kyc_cli::dlq::list(&env.settings, 10).await.unwrap().len() == 1).then_some(())
    })
    .await;
    worker.shutdown().await.expect("the worker stops");

    // The replay declares the topology itself (re-binding anything unbound), so
    // the broker's refusal comes from a policy: every publish is nacked.
    let _policy = refuse_all(&channel, &env.topology.submissions_queue()).await;
    let output = kycctl::run_unchecked(&env, &["dlq", "replay", "--all"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "replay must fail: {stderr}");
    assert!(
        stderr.contains("dead-1") && stderr.contains("stays in the dead queue"),
        "replay names the message it could not move: {stderr}"
    );
    let letters = kyc_cli::dlq::list(&env.settings, 10).await.unwrap();
    assert_eq!(
        letters.len(),
        1,
        "the dead letter is still there: {letters:?}"
    );
    assert_eq!(letters[0].id, "dead-1");
}
