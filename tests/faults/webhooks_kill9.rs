//! SIGKILL of the webhook dispatcher (`kyc-webhooks` processes) during a burst
//! of 5,000 events: every event is delivered at least once, under the same
//! webhook-id if more than once. Touches no shared service.

use crate::support::service_vars;
use kyc_core::wire::ResultEventV1;
use kyc_store::DataKey;
use kyc_testkit::webhooks::{Answer, Receiver, publish_events};
use kyc_testkit::{TestEnv, eventually};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

const EVENTS: usize = 5_000;

fn dispatcher(env: &TestEnv, n: usize) -> Child {
    let logs = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&logs).expect("a log directory");
    let log = std::fs::File::create(logs.join(format!("webhooks-{n}.log"))).expect("a log file");
    Command::new(kyc_testkit::binary("kyc-webhooks"))
        .envs(service_vars(env))
        .envs([
            ("KYC__WEBHOOKS__ALLOW_HTTP", "true"),
            ("KYC__WEBHOOKS__ALLOW_LOOPBACK", "true"),
            (
                "KYC__WEBHOOKS__RETRY_SCHEDULE",
                "0,100,200,400,800,1600,3200",
            ),
            ("KYC__WEBHOOKS__JITTER", "0"),
            ("KYC__WEBHOOKS__POLL_INTERVAL_MS", "50"),
            ("KYC__WEBHOOKS__TIMEOUT_MS", "2000"),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kyc-webhooks")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault test: kills dispatcher processes; needs `cargo build --bins`"]
async fn kill9_dispatcher_during_a_burst_loses_no_event() {
    let env = TestEnv::new().await;
    let (project, _) = env.project(false).await;
    let receiver = Receiver::start(|_| Answer::Status(200)).await;
    let key = DataKey::keyring(&env.settings.data_key().unwrap(), &[]).unwrap();
    let secret = kyc_webhooks::signature::generate_secret().unwrap();
    env.store
        .add_webhook(&key, project, &receiver.url(), &[], &secret)
        .await
        .unwrap();
    let (_connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;

    let mut children = vec![dispatcher(&env, 0)];
    let events: Vec<ResultEventV1> = (0..EVENTS)
        .map(|i| {
            let mut e =
                ResultEventV1::accepted(Uuid::now_v7(), project, time::OffsetDateTime::now_utc());
            e.userid = Some(format!("burst-{i}"));
            e
        })
        .collect();
    let sent: BTreeSet<String> = events.iter().map(|e| e.submission_id.to_string()).collect();

    // Publish the burst in chunks, killing the dispatcher twice while it flows.
    let mut kills = 0;
    for (i, chunk) in events.chunks(250).enumerate() {
        publish_events(&channel, &env.topology.events_exchange(), chunk)
            .await
            .expect("every event confirmed");
        if i == 4 || i == 12 {
            // Once deliveries are flowing, SIGKILL the dispatcher and start another.
            let before = receiver.count();
            eventually(Duration::from_secs(60), "deliveries in flight", || async {
                (receiver.count() > before).then_some(())
            })
            .await;
            let mut child = children.pop().unwrap();
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            children.push(dispatcher(&env, kills));
        }
    }
    eprintln!("published {EVENTS} events; the dispatcher was killed {kills} times");

    let received = eventually(
        Duration::from_secs(300),
        "every event at the receiver",
        || async {
            let got: BTreeSet<String> = receiver
                .received()
                .iter()
                .map(|r| {
                    r.json()["data"]["submissionId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            (got.len() >= EVENTS).then_some(got)
        },
    )
    .await;
    assert_eq!(received, sent, "every event delivered, nothing else");
    // Duplicates (at-least-once) keep their webhook-id.
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in receiver.received() {
        ids.entry(
            r.json()["data"]["submissionId"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
        .or_default()
        .insert(r.id.clone());
    }
    assert!(
        ids.values().all(|set| set.len() == 1),
        "one webhook-id per event"
    );
    eprintln!(
        "{} requests for {EVENTS} events ({} repeated after the kills)",
        receiver.count(),
        receiver.count() - EVENTS
    );
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}
