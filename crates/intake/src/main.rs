//! `kyc-intake`: the HTTP service. Thin: settings → telemetry → build → run.

use kyc_runtime::{Settings, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log.json);
    let metrics = telemetry::metrics();
    let intake = kyc_intake::Intake::build(&settings, metrics).await?;
    tracing::info!(addr = %intake.local_addr()?, "kyc-intake listening");
    intake.run(shutdown::on_signal()).await
}
