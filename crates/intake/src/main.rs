//! `kyc-intake`: the HTTP service. Thin: settings → telemetry → build → run.

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
    let metrics = telemetry::metrics();
    let intake = kyc_intake::Intake::from_settings(&settings, metrics).await?;
    tracing::info!(addr = %intake.local_addr()?, "kyc-intake listening");
    intake.run(shutdown::on_signal()).await
}
