//! `kycctl dev`: the whole service in one process, for a machine that already runs
//! RabbitMQ and PostgreSQL (a laptop, CI).

use kyc_config::{Settings, shutdown, telemetry};
use kyc_store::Store;
use secrecy::ExposeSecret;
use std::time::Duration;

/// The demo project's name; `dev` reuses it across runs.
const DEMO_PROJECT: &str = "demo";
/// The administrator the contract's example names, so the printed request works.
const DEMO_ADMIN: &str = kyc_core::example::ADMIN;

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Skip `db migrate` (it is cheap and idempotent, so it runs by default).
    #[arg(long)]
    no_migrate: bool,
}

pub async fn run(settings: Settings, args: DevArgs) -> anyhow::Result<()> {
    let db_url = settings.database.url.expose_secret().to_owned();
    if !args.no_migrate {
        kyc_store::migrate(&db_url).await?;
    }
    let store = Store::connect_lazy(&db_url, 2)?;
    // Only a digest of a key is stored, so an existing demo project gets a fresh
    // key each time `dev` starts; the printed one is always valid.
    let (project_id, api_key) = match store.project_by_name(DEMO_PROJECT).await? {
        Some(project) => (project.id, store.rotate_key(project.id).await?),
        None => {
            let (project, key) = store.create_project(DEMO_PROJECT, false).await?;
            (project.id, key)
        }
    };
    store.add_admin(project_id, DEMO_ADMIN).await?;

    let metrics = telemetry::metrics();
    let intake = kyc_intake::Intake::from_settings(&settings, metrics).await?;
    let addr = intake.local_addr()?;
    if !intake.wait_ready(Duration::from_secs(10)).await {
        tracing::warn!("RabbitMQ is not reachable yet; submissions get 503 until it is");
    }
    let worker = kyc_worker::Worker::from_settings(&settings)?;
    let stop = shutdown::on_signal();
    let intake_task = tokio::spawn(intake.run(stop.clone()));
    let worker_task = tokio::spawn(worker.run(stop.clone()));

    println!(
        "\nkyc-ingest is running on http://{addr}\n\n  project: {project_id}\n  api key: {key}\n  admin:   {DEMO_ADMIN}\n\nTry:\n\n  curl -s http://{addr}/v3/submission/migration \\\n    -H 'content-type: application/json' -H 'x-api-key: {key}' \\\n    -d '{body}'\n\nCtrl-C stops it.\n",
        key = api_key.expose(),
        body = example_body(),
    );

    let (intake_result, worker_result) = tokio::join!(intake_task, worker_task);
    intake_result??;
    worker_result??;
    // Give log lines a moment to flush before the runtime goes away.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

/// The contract's example request (`kyc_core::example`), keys in spec order.
pub fn example_body() -> String {
    kyc_core::example::full_json()
}
