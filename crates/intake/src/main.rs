//! `kyc-intake`: the HTTP service. Thin: settings → telemetry → build → run.

use kyc_config::{Settings, shutdown, telemetry};

/// mimalloc: cheaper than glibc's allocator for the many small, short-lived
/// allocations per message (bodies, headers, futures); docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log.json);
    let metrics = telemetry::metrics();
    let intake = kyc_intake::Intake::from_settings(&settings, metrics).await?;
    tracing::info!(addr = %intake.local_addr()?, "kyc-intake listening");
    intake.run(shutdown::on_signal()).await
}
