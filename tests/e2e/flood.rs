//! A flood of requests with random API keys must not push a real client out:
//! unknown keys are remembered apart from known ones (no eviction), and their
//! database lookups share a few connections (no starvation).
//!
//! Ignored in the parallel run: it measures latency, so `scripts/test` runs it
//! alone, after the other end-to-end tests. The flood's generator shares the two
//! cores with the intake under test; its figures are printed.

use kyc_testkit::{TestEnv, full_record};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const FLOOD_REQUESTS: usize = 50_000;
const FLOOD_CONNECTIONS: usize = 32;

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

/// `count` submissions, one after another at `pace`; every latency, panicking on
/// any answer but 200.
async fn real_client(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    pace: Duration,
    until: impl Fn(usize) -> bool,
) -> Vec<Duration> {
    let body = serde_json::to_vec(&full_record()).unwrap();
    let mut latencies = Vec::new();
    while !until(latencies.len()) {
        let started = Instant::now();
        let response = client
            .post(url)
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "real client refused during the flood: {text}");
        latencies.push(started.elapsed());
        tokio::time::sleep(pace).await;
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures latency: run alone (scripts/test does)"]
async fn a_flood_of_random_keys_does_not_delay_or_evict_a_real_client() {
    let mut env = TestEnv::new().await;
    // As shipped: no per-address limit, so the directory alone must hold.
    env.settings.http.per_address_rate_limit = 0;
    env.settings.http.rate_limit_per_second = 0;
    let intake = env.start_intake().await;
    let addr = intake.addr.unwrap();
    let (_, key) = env.project(false).await;
    let url = format!("http://{addr}/v3/submission/migration");
    let real = reqwest::Client::new();

    let mut idle = real_client(&real, &url, &key, Duration::from_millis(5), |n| n >= 200).await;
    let idle_p99 = p99(&mut idle);

    // The flood comes from another loopback address, as another client would.
    let flooder = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .pool_max_idle_per_host(FLOOD_CONNECTIONS)
        .build()
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let forbidden = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut flood = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        let (flooder, url, sent, forbidden) = (
            flooder.clone(),
            url.clone(),
            sent.clone(),
            forbidden.clone(),
        );
        flood.push(tokio::spawn(async move {
            while sent.fetch_add(1, Ordering::Relaxed) < FLOOD_REQUESTS {
                let random_key = uuid::Uuid::new_v4().simple().to_string();
                let response = flooder
                    .post(&url)
                    .header("x-api-key", random_key)
                    .body("{}")
                    .send()
                    .await
                    .unwrap();
                if response.status() == 403 {
                    forbidden.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let watch = {
        let done = done.clone();
        tokio::spawn(async move {
            for task in flood {
                task.await.unwrap();
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    let mut during = real_client(&real, &url, &key, Duration::from_millis(10), |n| {
        n >= 50 && done.load(Ordering::Relaxed)
    })
    .await;
    watch.await.unwrap();
    let flood_time = started.elapsed();
    let during_p99 = p99(&mut during);
    let forbidden = forbidden.load(Ordering::Relaxed);
    eprintln!(
        "flood: {FLOOD_REQUESTS} random-key requests in {flood_time:?} ({:.0}/s), {forbidden} \
         answered 403; real client: idle p99 {idle_p99:?} ({} requests), p99 during the flood \
         {during_p99:?} ({} requests, all 200)",
        FLOOD_REQUESTS as f64 / flood_time.as_secs_f64(),
        idle.len(),
        during.len()
    );
    assert_eq!(forbidden, FLOOD_REQUESTS, "every random key is forbidden");
    // Not a speed check (the figures above are printed for that): a bound far
    // above any healthy answer, which only a starved client would reach.
    assert!(
        during_p99 < Duration::from_secs(2),
        "real client starved during the flood: p99 {during_p99:?} (idle {idle_p99:?})"
    );
    env.stop_all().await;
}
