//! `kyc-webhooks`: deliver result events to the projects' webhook endpoints.
//! Scale by count: every dispatcher shares the queue and the deliveries table.

use kyc_config::{Settings, shutdown, telemetry};

fn main() -> anyhow::Result<()> {
    // mimalloc, tuned before any thread starts (`kyc_alloc`).
    kyc_alloc::init();
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log.json);
    if let Some(addr) = settings.webhooks.metrics_addr {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()?;
        tracing::info!(%addr, "serving /metrics");
    }
    let stop = shutdown::on_signal();
    kyc_webhooks::Dispatcher::from_settings(&settings)?
        .run(stop)
        .await
}
