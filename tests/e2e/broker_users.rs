//! Least privilege on the broker: the users of `deploy/rabbitmq/definitions.json`
//! (their permission regexes rewritten for this test's prefix) are created with
//! `rabbitmqctl` and used over real AMQP connections. The publisher user of a
//! migrating client can publish submissions and run `kycctl push`, but cannot
//! read the submission or dead-letter queues nor bind a queue to the events
//! exchange; the worker, intake and operator users can do their jobs.

use kyc_bus::lapin::options::{
    BasicConsumeOptions, BasicGetOptions, ConfirmSelectOptions, QueueBindOptions,
};
use kyc_bus::lapin::types::FieldTable;
use kyc_bus::lapin::{Channel, Connection};
use kyc_bus::{Ensured, Topology, is_access_refused};
use kyc_cli::{dlq, push};
use kyc_config::Settings;
use kyc_testkit::amqp::{publish_submission, with_api_key};
use kyc_testkit::scratch::random_tag;
use kyc_testkit::{Api, TestEnv, amqp_url, eventually, record};
use secrecy::SecretString;
use std::time::Duration;

const DEFINITIONS: &str = include_str!("../../deploy/rabbitmq/definitions.json");
const ROLES: [&str; 4] = ["kyc-intake", "kyc-worker", "kyc-publisher", "kyc-operator"];

/// One broker user made for this test.
#[derive(Debug, Clone)]
struct User {
    name: String,
    password: String,
}

/// Deletes the test's users when dropped, also when the test fails. Never
/// asserts: a failed deletion is reported on stderr.
#[derive(Debug, Default)]
struct Users(Vec<String>);

impl Drop for Users {
    fn drop(&mut self) {
        for name in self.0.drain(..) {
            match std::process::Command::new("rabbitmqctl")
                .args(["delete_user", &name])
                .output()
            {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "could not delete broker user {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("could not delete broker user {name}: {e}"),
            }
        }
    }
}

async fn rabbitmqctl(args: Vec<String>) -> anyhow::Result<()> {
    let shown = args.first().cloned().unwrap_or_default();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("rabbitmqctl")
            .args(&args)
            .output()
    })
    .await??;
    anyhow::ensure!(
        out.status.success(),
        "rabbitmqctl {shown}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The permissions of `role` in the definitions file, for `prefix` instead of
/// `kyc`: (configure, write, read).
fn permissions(role: &str, prefix: &str) -> [String; 3] {
    let definitions: serde_json::Value =
        serde_json::from_str(DEFINITIONS).expect("definitions.json is JSON");
    let entry = definitions["permissions"]
        .as_array()
        .expect("a permissions list")
        .iter()
        .find(|p| p["user"] == role)
        .unwrap_or_else(|| panic!("definitions.json has no permissions for {role}"));
    ["configure", "write", "read"].map(|kind| {
        let regex = entry[kind].as_str().expect("a regex");
        regex.replace(r"kyc\.", &format!(r"{prefix}\."))
    })
}

/// Creates a user with `role`'s permissions for `prefix`, under a random name.
async fn create(users: &mut Users, role: &str, prefix: &str) -> User {
    let user = User {
        name: format!("{prefix}-{role}"),
        password: format!("{}{}", random_tag(), random_tag()),
    };
    rabbitmqctl(vec![
        "add_user".into(),
        user.name.clone(),
        user.password.clone(),
    ])
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    users.0.push(user.name.clone());
    let [configure, write, read] = permissions(role, prefix);
    rabbitmqctl(vec![
        "set_permissions".into(),
        "-p".into(),
        "/".into(),
        user.name.clone(),
        configure,
        write,
        read,
    ])
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    user
}

/// The test broker's URL with `user`'s credentials.
fn url_of(user: &User) -> String {
    let base = amqp_url();
    let (scheme, rest) = base.split_once("://").expect("an AMQP URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{}:{}@{host}", user.name, user.password)
}

fn settings_of(env: &TestEnv, user: &User) -> Settings {
    let mut settings = env.settings.clone();
    settings.amqp.url = SecretString::from(url_of(user));
    settings
}

async fn connect(user: &User) -> Connection {
    kyc_bus::connect(&url_of(user), "kyc-tests-broker-users")
        .await
        .unwrap_or_else(|e| panic!("{} connects: {e}", user.name))
}

/// Asserts that `what` failed with ACCESS_REFUSED.
fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, kyc_bus::lapin::Error>) {
    match result {
        Err(e) if is_access_refused(&e) => {}
        other => panic!("{what}: expected ACCESS_REFUSED, got {other:?}"),
    }
}

async fn fresh(connection: &Connection) -> Channel {
    connection.create_channel().await.expect("a channel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_user_can_do_its_job_and_the_publisher_no_more() {
    let env = TestEnv::new().await;
    let prefix = env.settings.amqp.prefix.clone();
    let topology: &Topology = &env.topology;
    let (_project, key) = env.project(false).await;

    let mut users = Users::default();
    let mut made = Vec::new();
    for role in ROLES {
        made.push(create(&mut users, role, &prefix).await);
    }
    let [intake_user, worker_user, publisher, operator] =
        <[User; 4]>::try_from(made).expect("four users");

    // The worker declares the topology and serves everyone below.
    let _worker = env
        .start_worker_with(&settings_of(&env, &worker_user))
        .await;
    let guest = kyc_bus::connect(&amqp_url(), "kyc-tests-broker-users")
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the worker's topology", || async {
        topology.verify(&guest).await.ok()
    })
    .await;

    // The publisher may not declare the topology, only find it.
    let connection = connect(&publisher).await;
    assert_eq!(
        topology.ensure(&connection).await.unwrap(),
        Ensured::Present
    );

    // It publishes a submission with a server-named reply queue and gets the
    // result back.
    let (_replies, reply_queue, mut consumer) = kyc_bus::private_queue(&connection)
        .await
        .expect("the publisher declares and reads its reply queue");
    let channel = fresh(&connection).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let body = serde_json::to_vec(&record("publisher-user")).unwrap();
    publish_submission(
        &channel,
        topology,
        &body,
        with_api_key(&key).with_reply_to(reply_queue.as_str().into()),
    )
    .await;
    let reply = tokio::time::timeout(Duration::from_secs(20), {
        use futures_util::StreamExt;
        consumer.next()
    })
    .await
    .expect("a reply in time")
    .expect("the reply consumer open")
    .expect("a delivery");
    let event: serde_json::Value = serde_json::from_slice(&reply.data).unwrap();
    assert_eq!(event["event"], "submission.accepted", "{event}");

    // It cannot read the submissions or the dead letters…
    for queue in [topology.submissions_queue(), topology.dead_queue()] {
        let channel = fresh(&connection).await;
        refused(
            &format!("consume {queue}"),
            channel
                .basic_consume(
                    queue.as_str().into(),
                    "spy".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await,
        );
        let channel = fresh(&connection).await;
        refused(
            &format!("get from {queue}"),
            channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await,
        );
    }
    // …nor listen to every project's result events.
    let (spy_channel, spy_queue, _spy) = kyc_bus::private_queue(&connection).await.unwrap();
    refused(
        "bind to the events exchange",
        spy_channel
            .queue_bind(
                spy_queue.as_str().into(),
                topology.events_exchange().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await,
    );
    let _ = connection.close(200, "done".into()).await;

    // `kycctl push` works with the publisher user alone.
    let dir = std::env::temp_dir().join(format!("{}-users", env.db_name));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.jsonl");
    let lines: Vec<String> = (0..3)
        .map(|i| serde_json::to_string(&record(&format!("pushed-{i}"))).unwrap())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let pushed = push::run(
        &settings_of(&env, &publisher),
        push::PushArgs {
            file: file.clone(),
            api_key: Some(key.clone()),
            api_key_file: None,
            results: None,
            resume: false,
            encrypt: false,
            format: None,
            window: 16,
            batch_size: kyc_cli::push::DEFAULT_BATCH_SIZE,
            no_compress: false,
            idle_timeout: 20,
            images: Default::default(),
        },
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let pushed = pushed.expect("push as the publisher user");
    assert_eq!((pushed.records, pushed.accepted), (3, 3));

    // The intake's user publishes submissions (answered 200).
    let intake = env
        .start_intake_with(&settings_of(&env, &intake_user))
        .await;
    let api = Api::new(intake.addr.unwrap());
    eventually(
        Duration::from_secs(20),
        "the intake as its own user",
        || async { (api.submit(&key, &record("via-intake")).await.status == 200).then_some(()) },
    )
    .await;

    // The operator's user lists the dead letters (none here).
    let letters = dlq::list(&settings_of(&env, &operator), 10)
        .await
        .expect("dlq list as the operator user");
    assert!(letters.is_empty(), "{letters:?}");

    let _ = guest.close(200, "done".into()).await;
    // Stopped before their users go, so they do not retry logging in.
    env.stop_all().await;
    drop(users);
}
