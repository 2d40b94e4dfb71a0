//! Several broker addresses: processes given three, the first two of which
//! refuse connections, connect to the third — the intake and the worker
//! in-process, and `kycctl push` as a process of its own (`KYC__AMQP__URLS`).

use kyc_testkit::{Api, TestEnv, amqp_url, eventually, record};
use secrecy::SecretString;
use std::time::Duration;

/// An address on this machine where nothing listens: a port the kernel just
/// handed out and that was closed again.
fn refusing_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} refuses connections"
    );
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

fn three_addresses() -> String {
    format!(
        "{},{},{}",
        refusing_address(),
        refusing_address(),
        amqp_url()
    )
}

#[tokio::test]
async fn the_first_two_addresses_refuse_and_the_third_is_used() {
    let env = TestEnv::new().await;
    let (_, key) = env.project(false).await;
    let mut settings = env.settings.clone();
    settings.amqp.url = SecretString::from(three_addresses());
    assert_eq!(settings.amqp.addresses().len(), 3);

    // The bare client: `connect` returns the third node's connection.
    let connection = kyc_bus::connect(
        secrecy::ExposeSecret::expose_secret(&settings.amqp.url),
        "kyc-tests-addresses",
    )
    .await
    .expect("the third address answers");
    assert!(connection.status().connected());
    let _ = connection.close(200, "bye".into()).await;

    // The intake's link and the worker's.
    let intake = env.start_intake_with(&settings).await;
    let _worker = env.start_worker_with(&settings).await;
    let api = Api::new(intake.addr.unwrap());
    eventually(
        Duration::from_secs(20),
        "/readyz 200 over the third address",
        || async { (api.get("/readyz", None).await.status.as_u16() == 200).then_some(()) },
    )
    .await;
    let reply = api.submit(&key, &record("addresses-http")).await;
    assert_eq!(reply.status.as_u16(), 200, "{reply:?}");
    let status = env
        .await_row(reply.submission_id(), Duration::from_secs(20))
        .await;
    assert_eq!(status, "accepted");

    // `kycctl push`, a process of its own, given the list as KYC__AMQP__URLS.
    let dir = std::env::temp_dir().join(&env.db_name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("addresses.jsonl");
    let lines: Vec<String> = (0..3)
        .map(|i| record(&format!("addresses-push-{i}")).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut command = std::process::Command::new(kyc_testkit::binary("kycctl"));
    command
        .arg("push")
        .arg(&file)
        .env("KYC__DATABASE__URL", &env.db_url)
        .env("KYC__AMQP__URLS", three_addresses())
        .env("KYC__AMQP__PREFIX", &env.settings.amqp.prefix)
        .env("KYC_API_KEY", &key)
        .env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("running kycctl");
    assert!(
        output.status.success(),
        "kycctl push over three addresses: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results = std::fs::read_to_string(kyc_cli::push::default_results_path(&file)).unwrap();
    assert_eq!(results.lines().count(), 3, "one result per line: {results}");
    let sent = (0..3)
        .map(|i| format!("addresses-push-{i}"))
        .chain(["addresses-http".to_owned()])
        .collect();
    eventually(
        Duration::from_secs(20),
        "the pushed records stored",
        || async { (env.count_rows().await == 4).then_some(()) },
    )
    .await;
    env.assert_userids_stored_once(&sent).await;
}

#[tokio::test]
async fn when_no_address_answers_connecting_fails_with_the_last_error() {
    let urls = format!("{},{}", refusing_address(), refusing_address());
    let error = kyc_bus::connect(&urls, "kyc-tests-addresses")
        .await
        .expect_err("nothing listens");
    let message = error.to_string();
    assert!(message.contains("amqp"), "{message}");
    let none = kyc_bus::connect(" , ", "kyc-tests-addresses")
        .await
        .expect_err("no address at all");
    assert!(matches!(none, kyc_bus::BusError::NoAddress), "{none}");
}
