//! Our services, started in this process against the bench env, exactly as
//! `kycctl dev` starts them: `kyc_intake::Intake::build` / `run` and
//! `kyc_worker::Worker::from_settings` / `run`.

use crate::bench::env::BenchEnv;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running intake.
#[derive(Debug)]
pub struct OurIntake {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl OurIntake {
    pub async fn start(env: &BenchEnv) -> anyhow::Result<OurIntake> {
        let intake =
            kyc_intake::Intake::from_settings(&env.settings, kyc_config::telemetry::metrics())
                .await?;
        let addr = intake.local_addr()?;
        anyhow::ensure!(
            intake.wait_ready(Duration::from_secs(10)).await,
            "the intake's broker link did not come up"
        );
        let stop = env.stop.child_token();
        let task = tokio::spawn(intake.run(stop.clone()));
        Ok(OurIntake { addr, stop, task })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?
    }
}

/// A running worker.
#[derive(Debug)]
pub struct OurWorker {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl OurWorker {
    pub fn start(env: &BenchEnv) -> anyhow::Result<OurWorker> {
        let worker = kyc_worker::Worker::from_settings(&env.settings)?;
        let stop = env.stop.child_token();
        let task = tokio::spawn(worker.run(stop.clone()));
        Ok(OurWorker { stop, task })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?
    }
}
