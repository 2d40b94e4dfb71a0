//! Webhooks (`docs/api.md` "Webhooks"): result events POSTed to each
//! project's endpoints by the dispatcher, signed to the Standard Webhooks
//! specification, retried on a compressed schedule, recorded, replayable, and
//! never held up by another endpoint. Receivers are axum servers on loopback.

use crate::kycctl;
use kyc_bus::lapin::Channel;
use kyc_core::wire::ResultEventV1;
use kyc_store::DataKey;
use kyc_testkit::webhooks::{
    Answer, DELIVERY_TIMEOUT, Receiver, dispatcher_settings, publish_events, start_dispatcher,
    verifies,
};
use kyc_testkit::{Api, TestEnv, eventually, record};
use kyc_webhooks::signature::generate_secret;
use secrecy::ExposeSecret;
use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Runs `kycctl webhook args…` with the env's database, broker and data key;
/// `allow_loopback`: with the settings that allow plain HTTP to loopback.
async fn webhook_cli(env: &TestEnv, args: &[&str], allow_loopback: bool) -> Output {
    let mut command = std::process::Command::new(kycctl::binary());
    command
        .arg("webhook")
        .args(args)
        .env("KYC__DATABASE__URL", &env.db_url)
        .env("KYC__AMQP__URL", env.settings.amqp.url.expose_secret())
        .env("KYC__AMQP__PREFIX", &env.settings.amqp.prefix)
        .env("KYC__CRYPTO__DATA_KEY", kyc_testkit::TEST_DATA_KEY)
        .env("KYC__CRYPTO__DATA_KEY_ID", &env.settings.crypto.data_key_id)
        .env("RUST_LOG", "warn");
    if allow_loopback {
        command
            .env("KYC__WEBHOOKS__ALLOW_HTTP", "true")
            .env("KYC__WEBHOOKS__ALLOW_LOOPBACK", "true");
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the blocking task")
        .expect("running kycctl")
}

/// [`webhook_cli`] that must exit 0; its stdout.
async fn webhook_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = webhook_cli(env, args, true).await;
    assert!(
        out.status.success(),
        "kycctl webhook {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    kycctl::stdout(&out)
}

/// The test's data keyring, as the services build it.
fn keyring(env: &TestEnv) -> DataKey {
    DataKey::keyring(
        &env.settings.data_key().expect("a data key"),
        &env.settings.crypto.older_data_keys().expect("older keys"),
    )
    .expect("a valid data key")
}

/// Adds an endpoint for `url`; its id and secret.
async fn add_endpoint(env: &TestEnv, project: Uuid, url: &str) -> (Uuid, String) {
    let secret = generate_secret().expect("randomness");
    let endpoint = env
        .store
        .add_webhook(&keyring(env), project, url, &[], &secret)
        .await
        .expect("add a webhook endpoint");
    (endpoint.id, secret)
}

/// Publishes a result event to the events exchange as a worker does, and waits
/// for the broker's confirm.
async fn publish(env: &TestEnv, channel: &Channel, event: &ResultEventV1) {
    publish_events(
        channel,
        &env.topology.events_exchange(),
        std::slice::from_ref(event),
    )
    .await
    .expect("publish, confirmed");
}

fn accepted(project: Uuid, userid: &str) -> ResultEventV1 {
    let mut event =
        ResultEventV1::accepted(Uuid::now_v7(), project, time::OffsetDateTime::now_utc());
    event.userid = Some(userid.to_owned());
    event
}

/// The one delivery of a project once it is `status`; its (status, attempts).
async fn delivery_status(env: &TestEnv, project: Uuid, status: &str) -> (Uuid, i32) {
    eventually(
        DELIVERY_TIMEOUT,
        &format!("a {status} delivery of project {project}"),
        || async move {
            let deliveries = env
                .store
                .webhook_deliveries(project, false, 10)
                .await
                .expect("list deliveries");
            deliveries
                .iter()
                .find(|d| d.status == status)
                .map(|d| (d.id, d.attempts))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_reaches_the_projects_webhook_signed() {
    let env = TestEnv::new().await;
    let settings = dispatcher_settings(&env.settings, "0,100,200");
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let _dispatcher = start_dispatcher(&settings);
    let (project, api_key) = env.project(false).await;
    let receiver = Receiver::start(|_| Answer::Status(200)).await;

    // Added with kycctl, which prints the secret once.
    let out = webhook_ok(
        &env,
        &[
            "add",
            "--project",
            &project.to_string(),
            "--url",
            &receiver.url(),
            "--events",
            "submission.accepted,submission.rejected",
        ],
    )
    .await;
    // kycctl refuses plain HTTP and loopback targets by default.
    let refused = webhook_cli(
        &env,
        &[
            "add",
            "--project",
            &project.to_string(),
            "--url",
            &receiver.url(),
        ],
        false,
    )
    .await;
    assert!(
        !refused.status.success(),
        "a plain-HTTP loopback URL is refused by default"
    );
    let added: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON on stdout");
    let secret = added["secret"].as_str().expect("a secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");

    let api = Api::new(intake.addr.expect("the intake's address"));
    let reply = api.submit(&api_key, &record("hook-1")).await;
    let submission = reply.submission_id();
    eventually(DELIVERY_TIMEOUT, "the webhook", || async {
        (receiver.count() > 0).then_some(())
    })
    .await;
    let got = receiver.received();
    assert_eq!(got.len(), 1, "one POST per event and endpoint");
    let hook = &got[0];
    assert!(verifies(&secret, hook), "the signature verifies: {hook:?}");
    assert!(
        !verifies(&generate_secret().unwrap(), hook),
        "and not under another secret"
    );
    assert!(hook.id.starts_with("msg_"), "{}", hook.id);
    assert!(
        hook.user_agent.starts_with("kyc-ingest-webhooks/"),
        "{}",
        hook.user_agent
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ts: i64 = hook.timestamp.parse().expect("unix seconds");
    assert!((now - ts).abs() < 60, "a current timestamp: {ts}");
    let body = hook.json();
    assert_eq!(body["type"], "submission.accepted");
    assert_eq!(body["data"]["submissionId"], submission.to_string());
    assert_eq!(body["data"]["projectId"], project.to_string());
    assert_eq!(body["data"]["userid"], "hook-1");
    assert_eq!(body["data"]["status"], "accepted");
    let keys: BTreeSet<&str> = body["data"]
        .as_object()
        .expect("data")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["projectId", "status", "submissionId", "userid"]),
        "ids and outcome only, no personal data"
    );
    assert!(
        body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    // The reference implementation, if the test venv has it (scripts/webhooks-venv).
    crate::webhooks::reference_verify(&secret, hook);

    let (_, attempts) = delivery_status(&env, project, "delivered").await;
    assert_eq!(attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_records_announced_grouped_get_one_webhook_each() {
    let env = TestEnv::new().await;
    let settings = dispatcher_settings(&env.settings, "0,100,200");
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let _dispatcher = start_dispatcher(&settings);
    let (project, api_key) = env.project(false).await;
    let receiver = Receiver::start(|_| Answer::Status(200)).await;
    let (_, secret) = add_endpoint(&env, project, &receiver.url()).await;

    // One batch request: its records' results travel as grouped events.
    let mut stranger = record("grouped-stranger");
    stranger["admin"] = "stranger@example.com".into();
    let mut records: Vec<serde_json::Value> =
        (0..20).map(|i| record(&format!("grouped-{i}"))).collect();
    records.push(stranger);
    let api = Api::new(intake.addr.expect("the intake's address"));
    let reply = api
        .post(
            "/v3/submission/migration/batch",
            Some(&api_key),
            serde_json::to_vec(&records).expect("json"),
            &[],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let queued: BTreeSet<String> = reply.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["submissionId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(queued.len(), 20, "the stranger is refused at the edge");

    eventually(DELIVERY_TIMEOUT, "a webhook per record", || async {
        (receiver.count() >= queued.len()).then_some(())
    })
    .await;
    let got = receiver.received();
    assert_eq!(got.len(), queued.len(), "one POST per event: {got:?}");
    let delivered: BTreeSet<String> = got
        .iter()
        .map(|hook| {
            assert!(verifies(&secret, hook), "{hook:?}");
            let body = hook.json();
            assert_eq!(body["type"], "submission.accepted");
            body["data"]["submissionId"]
                .as_str()
                .expect("an id")
                .to_owned()
        })
        .collect();
    assert_eq!(delivered, queued, "each record's webhook, once");
    let ids: BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "a webhook-id per event");
}

/// The `standardwebhooks` package from PyPI verifies the request, when
/// `target/schemathesis-venv` has it (`scripts/webhooks-venv` installs it; CI
/// runs that before the tests, and under `CI` its absence fails the test).
pub fn reference_verify(secret: &str, hook: &kyc_testkit::webhooks::Received) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/schemathesis-venv/bin/python");
    let installed = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs scripts/webhooks-venv before the tests"
        );
        eprintln!(
            "no standardwebhooks in target/schemathesis-venv (scripts/webhooks-venv): reference check left out"
        );
        return;
    }
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/verify_webhook.py"))
        .env("WEBHOOK_SECRET", secret)
        .env("WEBHOOK_ID", &hook.id)
        .env("WEBHOOK_TIMESTAMP", &hook.timestamp)
        .env("WEBHOOK_SIGNATURE", &hook.signature)
        .env("WEBHOOK_BODY", String::from_utf8_lossy(&hook.body).as_ref())
        .output()
        .expect("run the reference verifier");
    assert!(
        out.status.success(),
        "the reference standardwebhooks package refuses the request: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_500s_then_200_is_four_posts_of_one_webhook_id() {
    let env = TestEnv::new().await;
    let settings = dispatcher_settings(&env.settings, "0,100,200,300,400");
    let (project, _) = env.project(false).await;
    let receiver = Receiver::start(|n| Answer::Status(if n < 3 { 500 } else { 200 })).await;
    let (_, secret) = add_endpoint(&env, project, &receiver.url()).await;
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    publish(&env, &channel, &accepted(project, "retried")).await;
    let _dispatcher = start_dispatcher(&settings);

    let (delivery, attempts) = delivery_status(&env, project, "delivered").await;
    let got = receiver.received();
    assert_eq!(got.len(), 4, "three failures, then the 200");
    assert_eq!(attempts, 4);
    let ids: BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "the same webhook-id every time: {ids:?}");
    assert!(got.iter().all(|r| verifies(&secret, r)));
    assert!(
        got.windows(2).all(|w| w[0].body == w[1].body),
        "the same body every time"
    );
    let log = env.store.webhook_attempts(delivery).await.unwrap();
    let statuses: Vec<Option<i32>> = log.iter().map(|a| a.status_code).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(500), Some(200)]);
    assert!(
        log[0].error.as_deref().is_some_and(|e| e.contains("500")),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_the_whole_schedule_fails_and_replay_delivers() {
    let env = TestEnv::new().await;
    let settings = dispatcher_settings(&env.settings, "0,50,100,150");
    let (project, _) = env.project(false).await;
    // A port nobody listens on, for now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let url = format!("http://{port}/hook");
    let (_, secret) = add_endpoint(&env, project, &url).await;
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    let event = accepted(project, "down");
    publish(&env, &channel, &event).await;
    let _dispatcher = start_dispatcher(&settings);

    let (delivery, attempts) = delivery_status(&env, project, "failed").await;
    assert_eq!(attempts, 4, "every attempt of the schedule");
    let log = env.store.webhook_attempts(delivery).await.unwrap();
    assert_eq!(log.len(), 4);
    assert!(
        log.iter()
            .all(|a| a.status_code.is_none() && a.error.is_some()),
        "{log:?}"
    );

    // kycctl lists it as failed, and replays it once the receiver is back.
    let listed = webhook_ok(
        &env,
        &[
            "deliveries",
            "--project",
            &project.to_string(),
            "--failed",
            "--attempts",
        ],
    )
    .await;
    assert!(listed.contains(&delivery.to_string()), "{listed}");
    assert!(listed.contains("\"status\":\"failed\""), "{listed}");
    let receiver = Receiver::start_on(port, |_| Answer::Status(204)).await;
    let replayed = webhook_ok(&env, &["replay", "--project", &project.to_string()]).await;
    assert!(replayed.contains("\"replayed\":1"), "{replayed}");
    let (again, _) = delivery_status(&env, project, "delivered").await;
    assert_eq!(again, delivery);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(verifies(&secret, &got[0]));
    assert_eq!(
        got[0].json()["data"]["submissionId"],
        event.submission_id.to_string()
    );
    assert_eq!(env.store.webhook_attempts(delivery).await.unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint() {
    let env = TestEnv::new().await;
    let settings = dispatcher_settings(&env.settings, "0,100,200,300");
    let (project, _) = env.project(false).await;
    let receiver = Receiver::start(|_| Answer::Status(410)).await;
    let (endpoint, _) = add_endpoint(&env, project, &receiver.url()).await;
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    publish(&env, &channel, &accepted(project, "gone")).await;
    let _dispatcher = start_dispatcher(&settings);

    let (_, attempts) = delivery_status(&env, project, "failed").await;
    assert_eq!(attempts, 1, "410 is final");
    let disabled = env
        .store
        .webhook(endpoint)
        .await
        .unwrap()
        .expect("the endpoint");
    assert!(!disabled.enabled);
    assert!(
        disabled
            .disabled_reason
            .as_deref()
            .is_some_and(|r| r.contains("410"))
    );
    assert_eq!(receiver.count(), 1);

    // A later event makes no delivery for the disabled endpoint, and after
    // `enable` the next one does.
    publish(&env, &channel, &accepted(project, "after")).await;
    let marker = accepted(project, "marker");
    let other = Receiver::start(|_| Answer::Status(200)).await;
    add_endpoint(&env, project, &other.url()).await;
    publish(&env, &channel, &marker).await;
    // (The event before it may reach the new endpoint too: it was added meanwhile.)
    let marker_id = marker.submission_id.to_string();
    eventually(
        DELIVERY_TIMEOUT,
        "the marker at the other endpoint",
        || async {
            other
                .received()
                .iter()
                .any(|r| r.json()["data"]["submissionId"] == marker_id.as_str())
                .then_some(())
        },
    )
    .await;
    assert_eq!(receiver.count(), 1, "nothing more to the disabled endpoint");
    webhook_ok(&env, &["enable", &endpoint.to_string()]).await;
    let listed = webhook_ok(&env, &["list", "--project", &project.to_string()]).await;
    assert!(listed.contains("\"enabled\":true"), "{listed}");
}

/// Deliveries of a project that are not `delivered` yet, and rows still leased.
async fn undelivered_and_leased(env: &TestEnv, project: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE d.status <> 'delivered'),
                count(*) FILTER (WHERE d.lease_token IS NOT NULL)
         FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
         WHERE w.project_id = $1",
    )
    .bind(project)
    .fetch_one(env.store.pool())
    .await
    .expect("count deliveries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_run_ahead_but_an_endpoint_never_has_more_than_its_limit_in_flight() {
    let env = TestEnv::new().await;
    let mut settings = dispatcher_settings(&env.settings, "0,100,200");
    settings.webhooks.per_endpoint_in_flight = 2;
    let (project, _) = env.project(false).await;
    let receiver = Receiver::start(|_| Answer::After(20, 200)).await;
    add_endpoint(&env, project, &receiver.url()).await;
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    for i in 0..40 {
        publish(&env, &channel, &accepted(project, &format!("ahead-{i}"))).await;
    }
    let _dispatcher = start_dispatcher(&settings);

    eventually(DELIVERY_TIMEOUT, "40 deliveries delivered", || async {
        let (undelivered, _) = undelivered_and_leased(&env, project).await;
        (undelivered == 0 && receiver.count() >= 40).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 40, "one POST per event");
    assert!(
        receiver.max_concurrent() <= 2,
        "{} requests at once to an endpoint limited to 2",
        receiver.max_concurrent()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_dispatcher_releases_the_claims_it_did_not_attempt() {
    let env = TestEnv::new().await;
    let mut settings = dispatcher_settings(&env.settings, "0,100,200");
    settings.webhooks.per_endpoint_in_flight = 1;
    let (project, _) = env.project(false).await;
    let receiver = Receiver::start(|_| Answer::After(300, 200)).await;
    add_endpoint(&env, project, &receiver.url()).await;
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    for i in 0..10 {
        publish(&env, &channel, &accepted(project, &format!("release-{i}"))).await;
    }
    let dispatcher = start_dispatcher(&settings);
    // The first attempt is under way: the claims ahead of it wait in memory.
    eventually(DELIVERY_TIMEOUT, "a first attempt", || async {
        (receiver.count() > 0).then_some(())
    })
    .await;
    dispatcher.shutdown().await.expect("a clean stop");
    let (undelivered, leased) = undelivered_and_leased(&env, project).await;
    assert!(undelivered > 0, "the stop came before the end");
    assert_eq!(
        leased, 0,
        "every claim not attempted is released at the stop"
    );

    // Another dispatcher delivers them all.
    let _again = start_dispatcher(&settings);
    eventually(DELIVERY_TIMEOUT, "every delivery", || async {
        (undelivered_and_leased(&env, project).await.0 == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_delay_another_projects_deliveries() {
    let env = TestEnv::new().await;
    let mut settings = dispatcher_settings(&env.settings, "0,5000");
    // Longer than the test: the hanging requests hold their slots throughout.
    settings.webhooks.timeout_ms = 120_000;
    settings.webhooks.per_endpoint_in_flight = 4;
    let (slow_project, _) = env.project(false).await;
    let (healthy_project, _) = env.project(false).await;
    let hanging = Receiver::start(|_| Answer::Hang).await;
    let healthy = Receiver::start(|_| Answer::Status(200)).await;
    add_endpoint(&env, slow_project, &hanging.url()).await;
    add_endpoint(&env, healthy_project, &healthy.url()).await;
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    let _dispatcher = start_dispatcher(&settings);

    // The hanging receiver first gets more events than it has slots.
    for i in 0..50 {
        publish(
            &env,
            &channel,
            &accepted(slow_project, &format!("slow-{i}")),
        )
        .await;
    }
    eventually(
        DELIVERY_TIMEOUT,
        "the hanging receiver holding its slots",
        || async { (hanging.count() >= 4).then_some(()) },
    )
    .await;
    // Then, while it hangs, events of the healthy project, one at a time, timed
    // from the publish to their arrival.
    let mut latencies = Vec::new();
    for i in 0..200 {
        let sent = Instant::now();
        publish(
            &env,
            &channel,
            &accepted(healthy_project, &format!("ok-{i}")),
        )
        .await;
        publish(
            &env,
            &channel,
            &accepted(slow_project, &format!("slow-more-{i}")),
        )
        .await;
        eventually(Duration::from_secs(10), "the healthy delivery", || async {
            (healthy.count() > i).then_some(())
        })
        .await;
        latencies.push(healthy.received()[i].at.duration_since(sent));
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "healthy endpoint while another hangs: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} deliveries)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
        latencies.len()
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
    assert_eq!(
        hanging.count(),
        4,
        "the hanging endpoint holds only its own slots"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_signatures_verify() {
    let env = TestEnv::new().await;
    let settings = dispatcher_settings(&env.settings, "0,100");
    let (project, _) = env.project(false).await;
    let receiver = Receiver::start(|_| Answer::Status(200)).await;
    let (endpoint, old) = add_endpoint(&env, project, &receiver.url()).await;
    let rotated = webhook_ok(
        &env,
        &["rotate-secret", &endpoint.to_string(), "--overlap", "1h"],
    )
    .await;
    let printed: serde_json::Value = serde_json::from_str(rotated.trim()).expect("JSON");
    let new = printed["secret"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    assert_ne!(new, old);
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    publish(&env, &channel, &accepted(project, "rotated")).await;
    let _dispatcher = start_dispatcher(&settings);
    eventually(DELIVERY_TIMEOUT, "the webhook", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    let hook = &receiver.received()[0];
    let signatures: Vec<&str> = hook.signature.split(' ').collect();
    assert_eq!(signatures.len(), 2, "{}", hook.signature);
    assert!(verifies(&new, hook), "the new secret verifies");
    assert!(
        verifies(&old, hook),
        "the old secret verifies during the overlap"
    );
    let only = |i: usize| kyc_testkit::webhooks::Received {
        signature: signatures[i].to_owned(),
        ..hook.clone()
    };
    assert!(
        verifies(&new, &only(0)) && verifies(&old, &only(1)),
        "new first, then old"
    );
    crate::webhooks::reference_verify(&old, hook);
    crate::webhooks::reference_verify(&new, hook);
    // The data key seals the secrets: the column holds neither.
    let (sealed,): (Vec<u8>,) =
        sqlx::query_as("SELECT secret_enc FROM webhook_endpoints WHERE id = $1")
            .bind(endpoint)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(&new[6..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_rotation_reseals_the_signing_secrets() {
    let mut env = TestEnv::new().await;
    let (project, _) = env.project(false).await;
    let receiver = Receiver::start(|_| Answer::Status(200)).await;
    let (endpoint, secret) = add_endpoint(&env, project, &receiver.url()).await;
    webhook_ok(
        &env,
        &["rotate-secret", &endpoint.to_string(), "--overlap", "1h"],
    )
    .await;

    // A new current data key; the old one only opens what it sealed.
    const NEW_DATA_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let ring = DataKey::from_base64("k2", &secrecy::SecretString::from(NEW_DATA_KEY))
        .unwrap()
        .with_older([(
            "test",
            &secrecy::SecretString::from(kyc_testkit::TEST_DATA_KEY),
        )])
        .unwrap();
    assert_eq!(env.store.webhook_secrets_to_reseal(&ring).await.unwrap(), 1);
    assert_eq!(env.store.reseal_webhook_secrets(&ring).await.unwrap(), 1);
    assert_eq!(env.store.webhook_secrets_to_reseal(&ring).await.unwrap(), 0);

    // A dispatcher that knows only the new key still signs with both secrets.
    env.settings.crypto.data_key = Some(secrecy::SecretString::from(NEW_DATA_KEY));
    env.settings.crypto.data_key_id = "k2".to_owned();
    let settings = dispatcher_settings(&env.settings, "0,100");
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    publish(&env, &channel, &accepted(project, "resealed")).await;
    let _dispatcher = start_dispatcher(&settings);
    eventually(DELIVERY_TIMEOUT, "the webhook", || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    let hook = &receiver.received()[0];
    assert_eq!(hook.signature.split(' ').count(), 2, "{}", hook.signature);
    assert!(
        verifies(&secret, hook),
        "the old secret still signs in the overlap"
    );
}
