//! Our services, started in this process against the bench env by
//! `kyc_testkit::run`, exactly as `kycctl dev` starts them.

use crate::env::BenchEnv;
use kyc_testkit::Running;
use std::net::SocketAddr;

/// A running intake.
#[derive(Debug)]
pub struct OurIntake {
    pub addr: SocketAddr,
    running: Running,
}

impl OurIntake {
    pub async fn start(env: &BenchEnv) -> anyhow::Result<OurIntake> {
        let running =
            kyc_testkit::run::start_intake(&env.settings, env.stop.child_token(), true).await?;
        let addr = running
            .addr
            .ok_or_else(|| anyhow::anyhow!("the intake has no address"))?;
        Ok(OurIntake { addr, running })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.shutdown().await
    }
}

/// A running worker.
#[derive(Debug)]
pub struct OurWorker(Running);

impl OurWorker {
    pub fn start(env: &BenchEnv) -> anyhow::Result<OurWorker> {
        kyc_testkit::run::start_worker(&env.settings, env.stop.child_token()).map(OurWorker)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.0.shutdown().await
    }
}
