//! `kycctl status` as an operator runs it against a running stack (an intake
//! and a worker of the test's own): exit 0 and the numbers when healthy, exit 2
//! naming the problem once a dead letter is present.

#![allow(clippy::unwrap_used)]

use kyc_bus::lapin::BasicProperties;
use kyc_bus::lapin::options::BasicPublishOptions;
use kyc_testkit::{Api, TestEnv, amqp_url, eventually, record};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

/// Runs `kycctl status` with only the test's `KYC__…` settings (and `PATH`).
async fn status(env: &TestEnv, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kycctl"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KYC__DATABASE__URL", &env.db_url)
        .env("KYC__AMQP__URL", amqp_url())
        .env("KYC__AMQP__PREFIX", env.topology.prefix())
        .arg("status")
        .args(args)
        .output()
        .await
        .expect("run kycctl status")
}

fn json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

fn queue<'a>(status: &'a Value, role: &str) -> &'a Value {
    status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["role"] == role)
        .unwrap_or_else(|| panic!("no {role} queue in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_zero_when_healthy_and_non_zero_with_a_dead_letter() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let intake = env.start_intake().await;
    let _worker = env.start_worker().await;
    let api = Api::new(intake.addr.unwrap());
    let accepted = api.submit(&key, &record("status-1")).await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    env.await_row(accepted.submission_id(), Duration::from_secs(10))
        .await;
    let mut bad = record("status-2");
    bad["birthDate"] = "not a date".into();
    let rejected = api.submit(&key, &bad).await;
    assert_eq!(rejected.status, 400, "{:?}", rejected.body);

    // Healthy once the worker's consumer is registered.
    let healthy = eventually(Duration::from_secs(10), "status exits 0", || async {
        let output = status(&env, &["--json"]).await;
        output.status.success().then_some(output)
    })
    .await;
    let body = json(&healthy);
    assert_eq!(body["problems"], serde_json::json!([]));
    let submissions = queue(&body, "submissions");
    assert_eq!(
        submissions["name"],
        format!("{}.submissions", env.topology.prefix())
    );
    assert!(submissions["consumers"].as_u64().unwrap() >= 1);
    assert_eq!(queue(&body, "dead_letters")["messages"], 0);
    assert!(
        submissions["publishRate"].is_null(),
        "no management URL given"
    );
    let project = body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["projectId"] == project_id.to_string())
        .expect("the project is listed");
    // Only stored submissions count: the one refused at the intake never was one.
    assert_eq!(project["lastHour"], 1);
    assert_eq!(project["lastMinute"], 1);
    assert_eq!(project["rejectedShareLastHour"], 0.0);
    assert!(body["submissionsTableBytes"].as_i64().unwrap() > 0);

    let screen = status(&env, &[]).await;
    assert!(screen.status.success());
    let text = String::from_utf8_lossy(&screen.stdout);
    assert!(text.contains("status: ok"), "{text}");
    assert!(text.contains(&project_id.to_string()), "{text}");

    // A dead letter, through the dead exchange as the broker would put it.
    let (connection, channel) = kyc_testkit::amqp::channel(&env.topology).await;
    let confirm = channel
        .basic_publish(
            env.topology.dead_exchange().into(),
            "submission.v1".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default()
                .with_message_id("dead-1".into())
                .with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let _ = connection.close(200, "bye".into()).await;

    let unhealthy = status(&env, &["--json"]).await;
    assert_eq!(unhealthy.status.code(), Some(2), "{unhealthy:?}");
    let body = json(&unhealthy);
    assert_eq!(queue(&body, "dead_letters")["messages"], 1);
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].as_str().unwrap().contains("dead letter"));
    let screen = status(&env, &[]).await;
    assert_eq!(screen.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&screen.stdout).contains("problem: 1 dead letter(s)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_non_zero_when_no_worker_consumes() {
    let env = TestEnv::new().await;
    // The topology exists (as after a deployment), but no worker runs.
    let (connection, _channel) = kyc_testkit::amqp::channel(&env.topology).await;
    let _ = connection.close(200, "bye".into()).await;

    let output = status(&env, &["--json"]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let body = json(&output);
    assert_eq!(queue(&body, "submissions")["consumers"], 0);
    assert_eq!(queue(&body, "bulk")["consumers"], 0);
    let prefix = env.topology.prefix();
    assert_eq!(
        body["problems"],
        serde_json::json!([
            format!("no worker consumes {prefix}.submissions"),
            format!("no worker consumes {prefix}.submissions.bulk"),
        ])
    );
}
