//! Every metric the dashboard and the alert rules use is exported by a real
//! intake or worker process, so renaming a metric breaks the build rather than
//! a panel or an alert. RabbitMQ's own `rabbitmq_*` metrics (and Prometheus's
//! `up`) are not ours and are left out; every `kyc_*` name is checked.
//!
//! The same run checks the labels of both pages: the labels the intake's request
//! metrics carry, and that no series names a project, a submission or a key.

use kyc_testkit::process::Process;
use kyc_testkit::{Api, TestEnv, eventually, full_record};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// The PromQL expressions of the Grafana dashboard: every `expr` of every
/// panel's targets.
fn dashboard_exprs() -> Vec<String> {
    let path = deploy("grafana/dashboards/kyc-ingest.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let json: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in json["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_owned());
            }
        }
    }
    exprs
}

/// The `expr:` values of the alert rules, single-line or block scalars (`|`,
/// `>`: the more-indented lines that follow).
fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).expect("alerts.yml");
    let lines: Vec<&str> = text.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        i += 1;
        let Some(value) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let mut block = String::new();
            while i < lines.len() {
                let next = lines[i];
                let next_indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && next_indent <= indent {
                    break;
                }
                block.push_str(next.trim());
                block.push(' ');
                i += 1;
            }
            exprs.push(block);
        } else {
            exprs.push(value.trim_matches(|c| c == '\'' || c == '"').to_owned());
        }
    }
    exprs
}

/// The identifiers of a PromQL expression that name one of our metrics.
fn our_metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut current = String::new();
    let mut in_string = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
            current.clear();
            continue;
        }
        if in_string {
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else {
            if current.starts_with("kyc_") {
                names.insert(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    names
}

/// Series names on a Prometheus text page.
fn exported_names(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_dashboard_and_the_alerts_is_exported() {
    let env = TestEnv::new().await;
    let (project_id, key) = env.project(false).await;
    // The worker declares the topology the intake publishes to.
    let worker = Process::worker(&env, &[]).await;
    let intake = Process::intake(&env, &[]).await;
    let api = Api::new(intake.addr.expect("the intake's address"));

    let accepted = api.submit(&key, &full_record()).await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    let id = accepted.submission_id();
    let refused = api.submit_raw(Some(&key), b"{".to_vec(), &[]).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    env.await_row(id, Duration::from_secs(20)).await;
    let read = api.result(&key, id).await;
    assert_eq!(read.status, 200, "{:?}", read.body);

    // Acknowledged means stored and announced: every per-batch metric is out.
    let worker_page = eventually(
        Duration::from_secs(20),
        "the worker's ack counted",
        || async {
            let page = worker.metrics().await;
            page.lines()
                .any(|l| l.starts_with("kyc_worker_acked_total ") && !l.ends_with(" 0"))
                .then_some(page)
        },
    )
    .await;
    let intake_page = intake.metrics().await;

    let mut exported = exported_names(&worker_page);
    exported.extend(exported_names(&intake_page));

    let dashboard: BTreeSet<String> = dashboard_exprs()
        .iter()
        .flat_map(|e| our_metric_names(e))
        .collect();
    let alerts: BTreeSet<String> = alert_exprs()
        .iter()
        .flat_map(|e| our_metric_names(e))
        .collect();
    assert!(
        dashboard.len() >= 10 && alerts.len() >= 3,
        "too few metric names parsed: dashboard {dashboard:?}, alerts {alerts:?}"
    );
    let missing: Vec<&String> = dashboard
        .iter()
        .chain(&alerts)
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "used by deploy/grafana or deploy/prometheus but exported by neither the intake nor the worker: {missing:?}"
    );

    // Histograms, not summaries: buckets, no quantile label.
    assert!(intake_page.contains("kyc_intake_request_duration_seconds_bucket{"));
    assert!(worker_page.contains("kyc_worker_batch_seconds_bucket{"));
    assert!(!intake_page.contains("quantile=") && !worker_page.contains("quantile="));
    // The route is the matched template, the code the error's.
    assert!(
        intake_page
            .lines()
            .any(|l| l.starts_with("kyc_intake_requests_total{")
                && l.contains(r#"route="/v3/submission/migration/{id}""#)
                && l.contains(r#"status="200""#)),
        "{intake_page}"
    );
    assert!(
        intake_page
            .lines()
            .any(|l| l.starts_with("kyc_intake_requests_total{")
                && l.contains(r#"status="400""#)
                && l.contains(r#"error_code="invalid_payload""#)),
        "{intake_page}"
    );
    assert!(intake_page.contains("kyc_build_info{") && worker_page.contains("kyc_build_info{"));
    // No label holds an id or a key.
    for page in [&intake_page, &worker_page] {
        for secret in [project_id.to_string(), id.to_string(), key.clone()] {
            assert!(!page.contains(&secret), "a metric label holds {secret}");
        }
    }
}
