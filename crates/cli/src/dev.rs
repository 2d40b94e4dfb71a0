//! `kycctl dev`: the whole service on one machine that already runs RabbitMQ and
//! PostgreSQL (a laptop, CI): migrates, makes a demo project, then runs the real
//! `kyc-intake` and one `kyc-worker` — the binaries built beside `kycctl` — until
//! Ctrl-C or SIGTERM, which it passes on to them.
//!
//! Running the binaries rather than linking the services keeps `kycctl` an
//! operator tool without an HTTP server in it, and `dev` runs exactly what is
//! deployed.

use anyhow::Context;
use kyc_config::{Settings, shutdown};
use kyc_store::Store;
use secrecy::ExposeSecret;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::{Child, Command};

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

    let addr = fixed_port(settings.http.addr)?;
    let stop = shutdown::on_signal();
    let dev = dev_env(&settings);
    let mut intake = spawn(
        "kyc-intake",
        &[&[("KYC__HTTP__ADDR", addr.to_string())], dev.as_slice()].concat(),
    )?;
    let mut worker = spawn("kyc-worker", &dev)?;
    wait_healthy(addr, &mut intake).await?;

    println!(
        "\nkyc-ingest is running on http://{addr}\n\n  project: {project_id}\n  api key: {key}\n  admin:   {DEMO_ADMIN}\n\nTry:\n\n  curl -s http://{addr}/v3/submission/migration \\\n    -H 'content-type: application/json' -H 'x-api-key: {key}' \\\n    -d '{body}'\n\nCtrl-C stops it.\n",
        key = api_key.expose(),
        body = example_body(),
    );

    tokio::select! {
        () = stop.cancelled() => {}
        status = intake.wait() => anyhow::bail!("kyc-intake exited: {}", status?),
        status = worker.wait() => anyhow::bail!("kyc-worker exited: {}", status?),
    }
    for child in [&mut intake, &mut worker] {
        terminate(child);
    }
    let (intake_status, worker_status) = tokio::join!(intake.wait(), worker.wait());
    anyhow::ensure!(intake_status?.success(), "kyc-intake did not stop cleanly");
    anyhow::ensure!(worker_status?.success(), "kyc-worker did not stop cleanly");
    Ok(())
}

/// `KYC__DEV=true` for the children unless both keys are configured: the
/// services refuse to start without keys, and a laptop has none. They then run on
/// the built-in development keys, and say so loudly.
fn dev_env(settings: &Settings) -> Vec<(&'static str, String)> {
    let keyed = settings.crypto.data_key.is_some() && settings.crypto.transit_key.is_some();
    // Already a development machine by configuration: the children read the same.
    if keyed || settings.dev {
        Vec::new()
    } else {
        eprintln!(
            "kycctl dev: KYC__CRYPTO__DATA_KEY and KYC__CRYPTO__TRANSIT_KEY are not both set; \
             running with KYC__DEV=true (built-in development keys, never for real data)"
        );
        vec![("KYC__DEV", "true".to_owned())]
    }
}

/// The configured address, with port 0 replaced by a free port, so the address
/// can be printed before the intake has bound it.
fn fixed_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    Ok(TcpListener::bind(addr)?.local_addr()?)
}

/// One of the service binaries from `kycctl`'s own directory, with the same
/// environment (and so the same settings) plus `extra`.
fn spawn(name: &str, extra: &[(&str, String)]) -> anyhow::Result<Child> {
    let path = sibling(name)?;
    let mut command = Command::new(&path);
    command.envs(extra.iter().map(|(k, v)| (*k, v.as_str())));
    // Should `dev` itself die, its children go with it.
    command.kill_on_drop(true);
    command
        .spawn()
        .with_context(|| format!("starting {}", path.display()))
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating kycctl")?;
    let path = me.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{name} is not built next to kycctl ({}); build all binaries: cargo build --release --bins",
        path.display()
    );
    Ok(path)
}

/// Waits until the intake accepts connections (or has exited).
async fn wait_healthy(addr: SocketAddr, intake: &mut Child) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Some(status) = intake.try_wait()? {
            anyhow::bail!("kyc-intake exited at start: {status}");
        }
        // The intake binds its port once it is built: then it answers.
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("kyc-intake did not listen on {addr} within 20 s")
}

/// SIGTERM, so the child drains as in production (the intake finishes its
/// requests, the worker its batch).
fn terminate(child: &Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// The contract's example request (`kyc_core::example`), keys in spec order.
pub fn example_body() -> String {
    kyc_core::example::full_json()
}
