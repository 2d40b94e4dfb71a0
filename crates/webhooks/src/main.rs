//! `kyc-webhooks`: deliver result events to the projects' webhook endpoints.
//! Scale by count: every dispatcher shares the queue and the deliveries table.

use kyc_config::{Settings, shutdown, telemetry};

/// mimalloc, as the other services.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
