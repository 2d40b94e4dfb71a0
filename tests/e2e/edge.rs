//! The hardened edge: slow and idle clients are closed, every error is JSON,
//! operator endpoints can live apart, and a flood of random keys cannot push a
//! real client out.

use axum::routing::get;
use kyc_testkit::{Api, Running, TestEnv, full_record};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long a test waits for the server to close a connection it should close:
/// generous, so a loaded machine does not fail the test; the timeout under test
/// is a fraction of it.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// Reads until the server closes the connection; the bytes it sent first.
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(CLOSE_WITHIN, read).await.ok()?;
    Some(seen)
}

/// Starts an intake with a route that panics (only this test binary has it).
async fn start_intake_with_panic_route(env: &TestEnv) -> Running {
    async fn boom() -> &'static str {
        panic!("secret panic text that must not reach the client")
    }
    let intake = kyc_intake::Intake::from_settings(&env.settings, kyc_config::telemetry::metrics())
        .await
        .unwrap()
        .merge_routes(axum::Router::new().route("/test/panic", get(boom)));
    let addr = intake.local_addr().unwrap();
    assert!(intake.wait_ready(Duration::from_secs(10)).await);
    let stop = CancellationToken::new();
    let handle = tokio::spawn(intake.run(stop.clone()));
    Running {
        stop,
        handle,
        addr: Some(addr),
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_closed_while_a_normal_request_succeeds() {
    let mut env = TestEnv::new().await;
    env.settings.http.header_read_timeout_ms = 500;
    let intake = env.start_intake().await;
    let addr = intake.addr.unwrap();
    let (_, key) = env.project(false).await;

    // Half a request line, then nothing: the slowloris pattern.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"POST /v3/submission/migr").await.unwrap();
        slow.push(stream);
    }
    // Connected, never a byte.
    let mut silent = TcpStream::connect(addr).await.unwrap();

    let started = Instant::now();
    let reply = Api::new(addr).submit(&key, &full_record()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    for (i, stream) in slow.iter_mut().enumerate() {
        assert!(
            read_until_closed(stream).await.is_some(),
            "slow connection {i} still open after {CLOSE_WITHIN:?}"
        );
    }
    assert!(read_until_closed(&mut silent).await.is_some());
    eprintln!(
        "51 slow connections closed {:?} after start (header-read timeout 500 ms)",
        started.elapsed()
    );

    // A kept-alive connection idle after a complete request is closed too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut idle)
        .await
        .expect("idle keep-alive connection closed");
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    env.stop_all().await;
}

#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408_in_json() {
    let mut env = TestEnv::new().await;
    env.settings.http.body_timeout_ms = 300;
    let intake = env.start_intake().await;
    let (_, key) = env.project(false).await;

    let mut stream = TcpStream::connect(intake.addr.unwrap()).await.unwrap();
    let head = format!(
        "POST /v3/submission/migration HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"admin\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await.expect("answered");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""errorCode":"request_timeout""#), "{text}");
    assert_eq!(env.count_rows().await, 0);
    env.stop_all().await;
}

async fn raw(addr: SocketAddr, method: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(method.parse().unwrap(), format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap()
}

async fn json_error(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "status {status}"
    );
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn every_error_is_json_unknown_routes_wrong_methods_and_panics() {
    let env = TestEnv::new().await;
    let intake = start_intake_with_panic_route(&env).await;
    let addr = intake.addr.unwrap();

    for path in ["/nope", "/v3/submission/migration/a/b", "/v3"] {
        let (status, body) = json_error(raw(addr, "GET", path).await).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["errorCode"], "not_found", "{path}");
    }

    let response = raw(addr, "PUT", "/v3/submission/migration").await;
    let allow = response.headers().get("allow").cloned();
    let (status, body) = json_error(response).await;
    assert_eq!(status, 405);
    assert_eq!(body["errorCode"], "method_not_allowed");
    assert_eq!(body["message"], "Method not allowed");
    assert!(
        allow.is_some_and(|a| a.to_str().unwrap().contains("POST")),
        "405 without Allow: POST"
    );

    let (status, body) = json_error(raw(addr, "DELETE", "/healthz").await).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (405, Some("method_not_allowed"))
    );

    let (status, body) = json_error(raw(addr, "GET", "/test/panic").await).await;
    assert_eq!(status, 500);
    assert_eq!(body["errorCode"], "processing_error");
    assert!(
        !body.to_string().contains("secret panic text"),
        "panic text leaked: {body}"
    );
    // The process survives its panic.
    assert_eq!(raw(addr, "GET", "/healthz").await.status(), 200);
    intake.shutdown().await.unwrap();
    env.stop_all().await;
}

#[tokio::test]
async fn operator_endpoints_can_be_served_apart_from_the_api() {
    let mut env = TestEnv::new().await;
    env.settings.http.operator_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let intake = kyc_intake::Intake::from_settings(&env.settings, kyc_config::telemetry::metrics())
        .await
        .unwrap();
    let public = intake.local_addr().unwrap();
    let operator = intake.operator_addr().expect("operator listener bound");
    assert!(intake.wait_ready(Duration::from_secs(10)).await);
    let stop = CancellationToken::new();
    let handle = tokio::spawn(intake.run(stop.clone()));

    for path in ["/metrics", "/readyz"] {
        let (status, body) = json_error(raw(public, "GET", path).await).await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (404, Some("not_found"))
        );
        assert_eq!(raw(operator, "GET", path).await.status(), 200, "{path}");
    }
    assert_eq!(raw(public, "GET", "/healthz").await.status(), 200);
    assert_eq!(
        raw(operator, "GET", "/v3/submission/migration/x")
            .await
            .status(),
        404
    );

    stop.cancel();
    handle.await.unwrap().unwrap();
    env.stop_all().await;
}
