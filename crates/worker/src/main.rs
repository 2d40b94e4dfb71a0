//! `kyc-worker`: consume submissions, store them, announce results. Scale by count.

use kyc_config::{Settings, shutdown, telemetry};

use std::time::Duration;

fn main() -> anyhow::Result<()> {
    // mimalloc, tuned before any thread starts (`kyc_alloc`).
    kyc_alloc::init();
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log.json);
    if let Some(addr) = settings.worker.metrics_addr {
        serve_metrics(addr)?;
        tracing::info!(%addr, "serving /metrics");
    }
    let stop = shutdown::on_signal();
    let worker = kyc_worker::Worker::from_settings(&settings)?;
    let drain = Duration::from_millis(settings.worker.drain_timeout_ms);
    let deadline = {
        let stop = stop.clone();
        async move {
            stop.cancelled().await;
            tokio::time::sleep(drain).await;
        }
    };
    tokio::select! {
        result = worker.run(stop) => result,
        () = deadline => anyhow::bail!("worker did not drain within {drain:?}; unacknowledged messages return to the queue"),
    }
}

/// Installs the Prometheus recorder and serves it on `addr` (any path answers the
/// metrics page): the worker has no HTTP server of its own.
fn serve_metrics(
    addr: std::net::SocketAddr,
) -> Result<(), metrics_exporter_prometheus::BuildError> {
    telemetry::prometheus_builder()
        .with_http_listener(addr)
        .install()?;
    telemetry::build_info();
    Ok(())
}
