//! One submission, one trace: the trace id a client sends in `traceparent` (or
//! the one the intake starts when it sends none) is on the intake's log line for
//! the submission and on the worker's, which is how a log search joins them.
//! Both processes are real (`kyc_testkit::process`), logging JSON lines.

use kyc_testkit::process::Process;
use kyc_testkit::{ADMIN, TestEnv, eventually, full_record};
use serde_json::Value;
use std::time::Duration;

/// Whether `value` holds `key: expected` anywhere (the JSON formatter puts span
/// fields under `span` and `spans`, event fields under `fields`).
fn holds(value: &Value, key: &str, expected: &str) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| (k == key && v.as_str() == Some(expected)) || holds(v, key, expected)),
        Value::Array(items) => items.iter().any(|v| holds(v, key, expected)),
        _ => false,
    }
}

/// The first log line of `process` about `submission_id` that carries `trace_id`,
/// awaited.
async fn line_of(process: &Process, submission_id: &str, trace_id: &str, what: &str) -> Value {
    eventually(Duration::from_secs(20), what, || async {
        process.log_lines().into_iter().find(|line| {
            holds(line, "submission_id", submission_id) && holds(line, "trace_id", trace_id)
        })
    })
    .await
}

/// POSTs the example record with an optional `traceparent`; the submission id
/// and the `traceparent` the intake answered with.
async fn submit(intake: &Process, key: &str, traceparent: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new()
        .post(format!(
            "http://{}/v3/submission/migration",
            intake.addr.expect("an address")
        ))
        .header("x-api-key", key)
        .json(&full_record());
    if let Some(value) = traceparent {
        request = request.header("traceparent", value);
    }
    let response = request.send().await.expect("the intake answers");
    assert_eq!(response.status(), 200);
    let answered = response
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("a traceparent on the response")
        .to_owned();
    let body: Value = response.json().await.expect("JSON");
    let id = body["submissionId"].as_str().expect("an id").to_owned();
    (id, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_submission_is_followed_from_the_request_to_the_worker_log_by_its_trace_id() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    let logs = [("RUST_LOG", "info,kyc_intake=debug,kyc_worker=debug")];
    let worker = Process::worker(&env, &logs).await;
    let intake = Process::intake(&env, &logs).await;

    // The client's trace is continued.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let (id, answered) = submit(&intake, &key, Some(&sent)).await;
    assert!(
        answered.starts_with(&format!("00-{trace_id}-")) && answered != sent,
        "the intake continues the trace with a span of its own: {answered}"
    );
    let at_intake = line_of(
        &intake,
        &id,
        trace_id,
        "the intake's line for the submission",
    )
    .await;
    assert!(holds(&at_intake, "project_id", &project_id.to_string()));
    let at_worker = line_of(
        &worker,
        &id,
        trace_id,
        "the worker's line for the submission",
    )
    .await;
    assert!(
        holds(&at_worker, "project_id", &project_id.to_string()),
        "{at_worker}"
    );

    // Without a traceparent the intake starts a trace, and the worker continues it.
    let (id, answered) = submit(&intake, &key, None).await;
    let new_trace = answered.split('-').nth(1).expect("a trace id").to_owned();
    assert_eq!(new_trace.len(), 32);
    assert_ne!(new_trace, trace_id);
    line_of(
        &intake,
        &id,
        &new_trace,
        "the intake's line for the second submission",
    )
    .await;
    line_of(
        &worker,
        &id,
        &new_trace,
        "the worker's line for the second submission",
    )
    .await;

    // Ids, never personal data or the key.
    for process in [&intake, &worker] {
        let text = std::fs::read_to_string(&process.log).expect("the log");
        for private in [
            "Jane Doe",
            "jane.doe@example.com",
            "123-45-6789",
            ADMIN,
            &key,
        ] {
            assert!(!text.contains(private), "a log line holds {private}");
        }
    }
}
