use super::*;

#[test]
fn percentiles_are_nearest_rank() {
    let outcome = Outcome {
        latencies_us: (1..=100).map(|ms| ms * 1000).collect(),
        ..Outcome::default()
    };
    assert_eq!(outcome.percentile_ms(0.5), Some(50.0));
    assert_eq!(outcome.percentile_ms(0.99), Some(99.0));
    assert_eq!(outcome.percentile_ms(1.0), Some(100.0));
    assert_eq!(Outcome::default().percentile_ms(0.5), None);
}

/// Against a tiny local server that counts what it receives: every request
/// answered and counted once, none failed, and never more than the schedule.
/// No assertion depends on how fast this machine happens to be.
#[tokio::test]
async fn loads_a_local_server() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/x",
        axum::routing::post({
            let received = received.clone();
            move || async move {
                received.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (connections, rate) = (4, 400.0);
    let (warmup, duration) = (Duration::from_millis(100), Duration::from_millis(300));
    let load = Load::start(Plan {
        addr,
        path: "/x".to_owned(),
        api_key: "k".to_owned(),
        body: Bytes::from_static(b"{}"),
        connections,
        warmup,
        duration,
        rate: Some(rate),
        threads: 1,
    })?;
    let outcome = load.finish().await?;
    server.abort();
    assert_eq!(outcome.errors, 0, "{outcome:?}");
    assert_eq!(outcome.non_200, 0, "{outcome:?}");
    // Every request the server received was answered 200 and counted once.
    assert_eq!(
        outcome.accepted_total,
        received.load(Ordering::SeqCst),
        "{outcome:?}"
    );
    // Counted requests are a subset of the answered ones, each with a latency.
    assert!(outcome.ok <= outcome.accepted_total, "{outcome:?}");
    assert_eq!(outcome.latencies_us.len() as u64, outcome.ok, "{outcome:?}");
    // Each connection sends its first request whatever the machine's speed;
    // no connection ever sends ahead of its schedule (one request per
    // interval from its staggered start until the window ends).
    let scheduled = (rate * (warmup + duration).as_secs_f64()).ceil() as u64;
    assert!(
        (connections as u64..=scheduled + connections as u64).contains(&outcome.accepted_total),
        "{} requests for a schedule of {scheduled}: {outcome:?}",
        outcome.accepted_total
    );
    Ok(())
}
