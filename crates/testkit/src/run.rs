//! Our intake and worker, started in this process exactly as `kycctl dev` starts
//! them: `kyc_intake::Intake::from_settings` / `run` and `kyc_worker::Worker::from_settings`
//! / `run`.

use kyc_config::Settings;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running intake or worker.
#[derive(Debug)]
pub struct Running {
    pub stop: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
    pub addr: Option<SocketAddr>,
}

impl Running {
    /// Cancels it and waits for it to finish; its own result.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.handle.await?
    }
}

/// Builds an intake from `settings` and runs it until `stop` is cancelled. With
/// `wait_ready`, first waits (up to 10 s) until its broker link is up.
pub async fn start_intake(
    settings: &Settings,
    stop: CancellationToken,
    wait_ready: bool,
) -> anyhow::Result<Running> {
    let metrics = kyc_config::telemetry::metrics();
    let intake = kyc_intake::Intake::from_settings(settings, metrics).await?;
    let addr = intake.local_addr()?;
    if wait_ready {
        anyhow::ensure!(
            intake.wait_ready(Duration::from_secs(10)).await,
            "intake broker link did not come up"
        );
    }
    let handle = tokio::spawn(intake.run(stop.clone()));
    Ok(Running {
        stop,
        handle,
        addr: Some(addr),
    })
}

/// Builds a worker from `settings` and runs it until `stop` is cancelled.
pub fn start_worker(settings: &Settings, stop: CancellationToken) -> anyhow::Result<Running> {
    let worker = kyc_worker::Worker::from_settings(settings)?;
    let handle = tokio::spawn(worker.run(stop.clone()));
    Ok(Running {
        stop,
        handle,
        addr: None,
    })
}
