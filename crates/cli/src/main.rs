//! `kycctl`: operate kyc-ingest. Each subcommand lives in its own module.

mod admin;
mod data_key;
mod dev;

use kyc_cli::{dlq, push, status, webhook};

use clap::{Parser, Subcommand};

use kyc_config::{Settings, telemetry};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "kycctl",
    version,
    about = "Operate kyc-ingest: database, projects, admins, keys, dev mode"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Database schema.
    #[command(subcommand)]
    Db(DbCommand),
    /// Projects (tenants) and their API keys.
    #[command(subcommand)]
    Project(admin::ProjectCommand),
    /// Administrators a project's submissions may name.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// API keys.
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// Migrate, ensure a demo project, then run an intake and a worker in this
    /// process until Ctrl-C (needs a local RabbitMQ and PostgreSQL).
    Dev(dev::DevArgs),
    /// Publish a JSON Lines or CSV file straight to RabbitMQ and collect one result
    /// per line (`docs/api.md` §8).
    Push(push::PushArgs),
    /// The dead-letter queue: messages no worker could process.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The data keyring that seals identity and document numbers at rest.
    #[command(subcommand)]
    DataKey(data_key::DataKeyCommand),
    /// Queues, recent submissions per project, table size; exits 2 when dead
    /// letters exist or no worker consumes (a deployment gate).
    Status {
        /// One JSON object instead of the screen.
        #[arg(long)]
        json: bool,
        /// RabbitMQ's management API (`http://user:password@host:15672`), for
        /// publish and deliver rates; without it they are unknown.
        #[arg(long, env = "KYC_MANAGEMENT_URL", hide_env_values = true)]
        management_url: Option<String>,
    },
    /// Stored submissions: erasure requests.
    #[command(subcommand)]
    Submission(kyc_cli::submission::SubmissionCommand),
    /// Webhook endpoints of a project, their deliveries and replays.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Submission images: `gc` removes objects no row references.
    #[command(subcommand)]
    Images(kyc_cli::images::ImagesCommand),
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Show dead messages (ids, death count, reason; never their content).
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish dead messages back to the submissions exchange.
    Replay {
        /// Replay every dead message.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Ids as `dlq list` shows them.
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Create the database if missing and apply pending migrations.
    Migrate,
}

fn main() -> anyhow::Result<()> {
    // mimalloc, tuned before any thread starts (`kyc_alloc`).
    kyc_alloc::init();
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    telemetry::init(settings.log.json);
    // Before any HTTP client (`status --management-url`): reqwest's TLS needs
    // the process's one rustls provider.
    kyc_webhooks::install_crypto_provider();
    match cli.command {
        Command::Db(DbCommand::Migrate) => {
            use secrecy::ExposeSecret;
            kyc_store::migrate(settings.database.url.expose_secret()).await?;
            eprintln!("database migrated");
            Ok(())
        }
        Command::Project(c) => admin::project(&settings, c).await,
        Command::Admin(c) => admin::admin(&settings, c).await,
        Command::Key(c) => admin::key(&settings, c).await,
        Command::Dev(args) => dev::run(settings, args).await,
        Command::DataKey(c) => data_key::run(&settings, c).await,
        Command::Submission(c) => kyc_cli::submission::run(&settings, c).await,
        Command::Webhook(c) => webhook::run(&settings, c).await,
        Command::Images(c) => kyc_cli::images::run(&settings, c).await,
        Command::Dlq(DlqCommand::List { limit, json }) => {
            let letters = dlq::list(&settings, limit).await?;
            if json {
                for letter in &letters {
                    println!("{}", serde_json::to_string(letter)?);
                }
            } else {
                println!("{:<40} {:>6}  {:<16} QUEUE", "ID", "DEATHS", "REASON");
                for l in &letters {
                    println!("{:<40} {:>6}  {:<16} {}", l.id, l.deaths, l.reason, l.queue);
                }
                eprintln!("{} dead message(s) shown", letters.len());
            }
            Ok(())
        }
        Command::Dlq(DlqCommand::Replay { all, ids }) => {
            let selection = if all {
                dlq::Selection::All
            } else {
                dlq::Selection::Ids(ids.into_iter().collect())
            };
            let replayed = dlq::replay(&settings, &selection).await?;
            println!("replayed {replayed} message(s)");
            Ok(())
        }
        Command::Status {
            json,
            management_url,
        } => {
            let status = status::read(&settings, management_url.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                print!("{}", status.render());
            }
            if !status.problems.is_empty() {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Push(args) => {
            let report = push::run(&settings, args).await?;
            let secs = report.elapsed.as_secs_f64();
            println!(
                "pushed {} records in {secs:.1}s ({:.0}/s): {} accepted, {} rejected{}{}; results in {}",
                report.records,
                report.records as f64 / secs.max(1e-9),
                report.accepted,
                report.rejected,
                if report.skipped > 0 {
                    format!(" ({} lines already had results)", report.skipped)
                } else {
                    String::new()
                },
                if report.images_stored + report.images_failed > 0 {
                    format!(
                        "; {} images stored, {} failed",
                        report.images_stored, report.images_failed
                    )
                } else {
                    String::new()
                },
                report.results.display()
            );
            Ok(())
        }
    }
}

/// Parses a project id argument.
fn project_id(s: &str) -> Result<Uuid, String> {
    Uuid::parse_str(s).map_err(|e| format!("not a project id: {e}"))
}
